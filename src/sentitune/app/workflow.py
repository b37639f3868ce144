"""The stages that finish a run, and the main job `sentitune run`: data -> baselines -> fine-tune -> evaluate ->
compare -> report, in one call. This is the only module that chains stages; each stage stands alone.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from rich.console import Console

from ..core.labels import LabelScheme
from ..data import examples_descriptor, read_source
from ..models.loading import load_tokenizer
from ..run.config import TrainConfig
from ..run.folder import RunFolder

console = Console()
DEFAULT_BASELINES = ("majority", "tfidf", "vader", "base")
DONE, JOB = "done.json", "job.json"  # in the main job's staging folder: finished baselines, the sized job
STATS_SAMPLE = 5000  # texts per split for the token-length percentiles of the main job's data summary


def _stage(title: str) -> float:
    console.rule(f"[bold]{title}")
    return time.perf_counter()


def fine_tune(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, callbacks=()) -> Path | None:
    """Train a run and write its model card: the run folder (None on DDP ranks other than 0). With
    `cfg.self_distill`, the run then teaches a student of its size: the student's run folder."""
    from ..training.train import train

    if cfg.self_distill != "none":
        check_self_distill(cfg, resume, overwrite)
        final = RunFolder.of(cfg.output_dir, cfg.name)
        if resume and final.metrics_path.is_file() and not final.is_partial:  # killed while teaching the student
            return self_distilled(final.path, cfg, resume, overwrite, callbacks)
    run_dir = train(cfg, resume=resume, overwrite=overwrite, callbacks=callbacks)
    if run_dir is None:
        return None
    carded(run_dir)
    return run_dir if cfg.self_distill == "none" else self_distilled(run_dir, cfg, resume, overwrite, callbacks)


def carded(run_dir: Path) -> Path:
    """A finished run evaluated (evaluation.json, plots; reporting reads, never computes it) with its model card."""
    from ..evaluation.evaluate import evaluate_run
    from ..reporting.card import write_model_card

    evaluate_run(run_dir)
    return write_model_card(run_dir)


def taught_name(cfg: TrainConfig) -> str:
    return f"{cfg.name}-taught"


def check_self_distill(cfg: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Before any training: distillation runs in one process, and the student's folder must be free."""
    import os

    from ..core.errors import SentituneError
    from ..training.trainer import check_folders

    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise SentituneError(f"--self-distill {cfg.self_distill}: the student is taught in one process; start "
                             "without torchrun/accelerate, or train here and `sentitune distill` afterwards.")
    check_folders(dataclasses.replace(cfg, name=taught_name(cfg)), resume, overwrite)


def self_distilled(run_dir: Path, cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
                   callbacks=(), frames: dict | None = None) -> Path:
    """The student run `cfg.self_distill` asks for: the finished run at `run_dir` (alone, or with TF-IDF + LR)
    labels the train split and up to `cfg.self_distill_texts` of the source's unlabelled texts, and a model of its
    size started from its weights learns them for one epoch at half its peak rate, keeping the last checkpoint (the
    recipe measured on IMDB, docs/results.md). `frames`: the source as read, when the caller has it."""
    from ..training.distill import teacher_depth

    if not cfg.self_distill_texts:
        frames = {}
    elif frames is None:
        frames = read_source(cfg.data.data, cfg.data)
    transfer = frames["unsupervised"][["text"]] if "unsupervised" in frames else None
    if cfg.self_distill_texts and transfer is None:
        console.print(f"self-distill: {cfg.data.data} has no unlabelled split; the teacher labels the train split "
                      "only.", markup=False)
    dcfg, student = self_distill_settings(cfg, teacher_depth(RunFolder(run_dir)), transfer is not None)
    return distill_student(run_dir, dcfg, student, resume=resume, overwrite=overwrite, callbacks=callbacks,
                           transfer=transfer)


def self_distill_settings(cfg: TrainConfig, depth: int, unlabelled: bool = True):
    """The DistillConfig and the student's training overrides of `cfg.self_distill` for a run of `depth` layers."""
    from ..run.config import DistillConfig

    dcfg = DistillConfig(student_layers=depth, teacher_ensemble=None if cfg.self_distill == "model" else "tfidf",
                         transfer_data=f"{cfg.data.data} [unsupervised]" if unlabelled else None,
                         transfer_examples=cfg.self_distill_texts or None)
    return dcfg, {"name": taught_name(cfg), "epochs": 1.0, "max_steps": -1, "learning_rate": cfg.learning_rate / 2,
                  "checkpoint": "last", "self_distill": "none"}


def distill_student(teacher_run: str | Path, dcfg, overrides: dict | None = None, config: str | Path | None = None,
                    preset: str | None = None, resume: bool = False, overwrite: bool = False, callbacks=(),
                    transfer=None) -> Path:
    """Distil a finished run into a student run (`training.distill`) and write its model card: the student's run
    folder."""
    from ..training.distill import distill

    run_dir = distill(teacher_run, dcfg, overrides, config, preset, resume, overwrite, callbacks, transfer=transfer)
    carded(run_dir)
    return run_dir


def data_summary(cfg: TrainConfig, tokenizer, frames: dict) -> dict:
    """Counts, duplicates and token lengths of the source (`frames`, as read), printed and returned."""
    from ..data.stats import dataset_stats, stats_for_json, stats_table

    stats = dataset_stats(cfg.data, tokenizer, frames, sample=STATS_SAMPLE)
    console.print(stats_table(stats))
    return stats_for_json(stats)


def score_baselines(splits, labels: LabelScheme, examples: dict, names, out_dir: Path, options: dict) -> list[Path]:
    """Fit each baseline family on `splits`, score it on the test split, save one folder per entry; print a line
    each. A family already saved in `out_dir` (a resumed job) is kept: `done.json` lists the finished ones."""
    from ..core.io import atomic_write_text
    from ..evaluation.baselines import run_baseline, save_baseline
    from ..run.folder import read_json

    done = read_json(out_dir / DONE)
    for name in names:
        if name in done:
            console.print(f"{name:>18}: kept from the interrupted job", markup=False)
            continue
        done[name] = []
        for result in run_baseline(name, splits, examples, labels, **options.get(name, {})):
            done[name].append(save_baseline(result, out_dir).name)
            m = result["metrics"]
            console.print(f"{result['name']:>18}: accuracy {m['accuracy']:.4f}  macro-F1 {m['f1_macro']:.4f}  "
                          f"({result['examples_per_s']:.0f} ex/s) -> {out_dir / done[name][-1]}", markup=False)
        atomic_write_text(out_dir / DONE, json.dumps(done))
    return [out_dir / folder for name in names for folder in done[name]]


def baseline_options(cfg: TrainConfig, probe_per_class: int) -> dict:
    """The base encoder reads the texts as the fine-tuned model will (`cfg`: a prepared, resolved config)."""
    return {"base": {"probe_per_class": probe_per_class, "max_length": cfg.max_length}}


def checked_ensemble(ensemble: str | None, baselines) -> str | None:
    """The baseline entry `--ensemble` averages the run with (None for none), checked before any work."""
    if ensemble in (None, "none"):
        return None
    from ..core.errors import SentituneError
    from ..evaluation.ensemble import ensemble_baseline

    partner = ensemble_baseline(ensemble)
    if ensemble not in baselines:
        raise SentituneError(f"--ensemble {ensemble}: averages the run with the {ensemble} baseline; add {ensemble} "
                             f"to --baselines (now {','.join(baselines) or 'none'}).")
    return partner


def print_comparison(table: dict) -> None:
    """The comparison as a terminal table of the columns a reader decides by (the full table is in report.md and
    comparison/comparison.md), then the headline and the decision."""
    from rich.table import Table

    from ..evaluation.compare import bootstrap_of, fmt, fmt_bootstrap_p, fmt_ci, fmt_delta, fmt_p

    binary = table["ranked_by"] == "accuracy"
    out = Table(title=f"test: {table['rows'][0]['n']} examples, best baseline {table['best_baseline']}",
                title_justify="left")
    for header in ("entry", "accuracy [95% CI]", "macro-F1", "Δ vs best baseline",
                   "McNemar p" if binary else "bootstrap p", "examples/s"):
        out.add_column(header, justify="left" if header == "entry" else "right")
    for row in table["rows"]:
        delta = row["delta_accuracy_vs_best_baseline"] if binary else bootstrap_of(row).get("delta")
        p = fmt_p((row["mcnemar_vs_best_baseline"] or {}).get("p_value")) if binary else fmt_bootstrap_p(
            bootstrap_of(row))
        out.add_row(row["name"], f"{fmt(row['accuracy'])} {fmt_ci(row['accuracy_ci95'])}", fmt(row["f1_macro"]),
                    fmt_delta(row, table, delta), p, fmt(row["examples_per_s"], ",.0f"))
    console.print(out)
    console.print(table["headline"], markup=False)
    if table.get("decision"):
        console.print(f"[bold]{table['decision']}[/bold]: ", end="")
        console.print(table["advice"], markup=False)


def planned_job(cfg: TrainConfig, frames: dict, staging: Path, time_budget_s: float | None, estimate: bool,
                probe_per_class: int, baselines, started: float, resume: bool):
    """The prepared data of the job and its plan ({} without one): sized to the budget on this machine (its
    batch-size sweeps and measured rates shared), or, resuming, the plan the interrupted job saved in `staging`."""
    from ..run.config import load_config
    from ..run.folder import read_json, write_json
    from ..training.autobatch import Sweep, tuned
    from ..training.trainer import prepare
    from .budget import size_job

    saved = read_json(staging / JOB) if resume else {}
    if saved:
        prepared = prepare(load_config(overrides=saved["cfg"]), frames)
        prepared = dataclasses.replace(prepared, sweeps={k: Sweep(**v) for k, v in saved["sweeps"].items()})
        console.print(f"resuming the job as it was planned: {saved['plan'].get('sentence', 'no time budget')}",
                      markup=False)
        return prepared, saved["plan"], saved["probe_per_class"]
    prepared, plan = tuned(prepare(cfg, frames)), {}  # --batch-size auto: measured once, for budget and training
    if time_budget_s is not None or estimate:
        console.print("measuring training and prediction speed on a few batches...", markup=False)
        job = size_job(prepared, time_budget_s, time.perf_counter() - started, probe_per_class, baselines)
        plan = job.to_dict() | {"sentence": job.sentence(prepared.labels.n)}
        console.print(plan["sentence"], markup=False)
        if job.cfg.data != prepared.cfg.data:  # sized to the budget: the same source, sampled again in memory
            prepared = dataclasses.replace(prepare(job.cfg, frames), sweeps=prepared.sweeps)
        probe_per_class = job.probe_per_class
    staging.mkdir(parents=True, exist_ok=True)
    write_json(staging / JOB, {"cfg": prepared.cfg.to_dict(), "probe_per_class": probe_per_class, "plan": plan,
                               "sweeps": {k: v.to_dict() for k, v in prepared.sweeps.items()}})
    return prepared, plan, probe_per_class


def run_main_job(cfg: TrainConfig, baselines: tuple[str, ...] = DEFAULT_BASELINES, probe_per_class: int = 500,
                 overwrite: bool = False, time_budget_s: float | None = None, estimate: bool = True,
                 ensemble: str | None = None, resume: bool = False) -> Path | None:
    """Run every stage on `cfg` and return the finished run folder (with baselines/, comparison/ and report.html).

    `time_budget_s` sizes the training set, evaluation sample and probe to fit (measured on this machine first);
    without it the job's duration is estimated and printed (`estimate=False` skips the measurement). `ensemble`
    (tfidf): the run averaged with that baseline is compared too, as a row of its own. `resume`: an interrupted job
    goes on as it was planned, keeping the baselines it scored and the training's last checkpoint."""
    from ..evaluation.evaluate import evaluate_run

    if cfg.self_distill != "none":
        check_self_distill(cfg, resume=resume, overwrite=overwrite)
    partner = checked_ensemble(ensemble, baselines)
    staging = Path(cfg.output_dir) / f".{cfg.name}.baselines"
    if not resume:
        shutil.rmtree(staging, ignore_errors=True)
    started = _stage("1/5 data")
    frames = read_source(cfg.data.data, cfg.data)  # the source is read once; every stage below works from it
    stats = data_summary(cfg, load_tokenizer(cfg.model, cfg.trust_remote_code), frames)
    prepared, plan, probe_per_class = planned_job(cfg, frames, staging, time_budget_s, estimate, probe_per_class,
                                                  baselines, started, resume)
    cfg, final = prepared.cfg, RunFolder.of(cfg.output_dir, cfg.name)
    _stage("2/5 baselines")
    finished = resume and final.metrics_path.is_file() and not final.is_partial and not staging.exists()
    if not finished:  # a resumed job that got past training has its baselines in the run folder already
        examples = examples_descriptor(prepared.splits["test"], "test", cfg.data)
        score_baselines(prepared.splits, prepared.labels, examples, baselines, staging,
                        baseline_options(cfg, probe_per_class))
    _stage("3/5 fine-tune")
    run = RunFolder(final.path) if finished else trained_run(cfg, prepared, frames, resume, overwrite)
    if run is None:  # a DDP rank other than 0
        return None
    if staging.exists():
        (staging / DONE).unlink(missing_ok=True)
        (staging / JOB).unlink(missing_ok=True)
        staging.rename(run.baselines_dir)
    run.write_data_stats(stats)
    if plan:
        run.write_budget(plan | {"actual_s_until_evaluation": round(time.perf_counter() - started)})
    _stage("4/5 evaluate and compare")
    evaluate_run(run.path)
    print_comparison(compared(run, partner))
    _stage("5/5 report and model card")
    html = reported(run)
    console.print(f"done in {time.perf_counter() - started:.0f} s: {run.path} (report: {html})", markup=False)
    return run.path


def trained_run(cfg: TrainConfig, prepared, frames: dict, resume: bool, overwrite: bool) -> RunFolder | None:
    """The job's model: the run (its card comes once the comparison exists), or with self-distillation its
    student, the teacher keeping a card of its own."""
    from ..training.train import train

    run_dir = train(cfg, resume=resume, overwrite=overwrite, prepared=prepared)
    if run_dir is None:
        return None
    if cfg.self_distill != "none":
        carded(run_dir)
        run_dir = self_distilled(run_dir, cfg, resume=resume, overwrite=overwrite, frames=frames)
    return RunFolder(run_dir)


def compared(run: RunFolder, partner: str | None) -> dict:
    """The comparison of the run with its baselines (and the ensemble row, with `partner`), written and returned."""
    from ..evaluation.compare import compare
    from ..run.folder import is_baseline_folder

    entries = [run.path, *sorted(p for p in run.baselines_dir.iterdir() if is_baseline_folder(p))]
    if partner:
        from ..evaluation.ensemble import ensemble_entry
        from ..run.folder import write_baseline

        entries.append(write_baseline(ensemble_entry(run.path, run.baselines_dir / partner), run.ensembles_dir))
    return compare(entries, run.comparison_dir)


def reported(run: RunFolder) -> Path:
    """The model card and the report, from the finished comparison; the report's path."""
    from ..reporting.card import write_model_card
    from ..reporting.report import write_report

    write_model_card(run.path, comparison=run.comparison_dir)
    return write_report(run.path, comparison=run.comparison_dir)
