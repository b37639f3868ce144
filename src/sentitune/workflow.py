"""The main job, `sentitune run`: data -> baselines -> fine-tune -> evaluate -> compare -> report, in one call."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from rich.console import Console

from .config import TrainConfig
from .data import examples_descriptor, prepare_splits

console = Console()
DEFAULT_BASELINES = ("tfidf", "vader", "base")


def _stage(title: str) -> float:
    console.rule(f"[bold]{title}")
    return time.perf_counter()


def data_summary(cfg: TrainConfig) -> dict:
    """Counts, duplicates and token lengths of the source, printed and returned."""
    from .datastats import dataset_stats, stats_for_json, stats_table
    from .models import load_tokenizer

    stats = dataset_stats(cfg.data, load_tokenizer(cfg.model, cfg.trust_remote_code))
    console.print(stats_table(stats))
    return stats_for_json(stats)


def baseline_results(cfg: TrainConfig, names: tuple[str, ...], out_dir: Path, probe_per_class: int) -> list[Path]:
    """Fit each baseline family on the run's train split, score it on the run's exact test examples, save it."""
    from .baselines import run_baseline, save_baseline

    splits, _ = prepare_splits(cfg.data)
    examples = examples_descriptor(splits["test"], "test", cfg.data)
    folders = []
    for name in names:
        opts = {"probe_per_class": probe_per_class, "max_length": cfg.max_length} if name == "base" else {}
        for result in run_baseline(name, splits, examples, **opts):
            folders.append(save_baseline(result, out_dir))
            m = result["metrics"]
            console.print(f"{result['name']:>18}: accuracy {m['accuracy']:.4f}  F1 {m['f1']:.4f}  ({result['examples_per_s']:.0f} ex/s)")
    return folders


def run_main_job(cfg: TrainConfig, baselines: tuple[str, ...] = DEFAULT_BASELINES, probe_per_class: int = 500,
                 overwrite: bool = False) -> Path:
    """Run every stage on `cfg` and return the finished run folder (with baselines/, comparison/ and report.html)."""
    from .card import write_model_card
    from .compare import compare
    from .evaluate import evaluate_run
    from .report import write_report
    from .train import train

    started = _stage("1/5 data")
    stats = data_summary(cfg)
    staging = Path(cfg.output_dir) / f".{cfg.name}.baselines"
    shutil.rmtree(staging, ignore_errors=True)
    _stage("2/5 baselines")
    baseline_dirs = baseline_results(cfg, baselines, staging, probe_per_class)
    _stage("3/5 fine-tune")
    run_dir = train(cfg, overwrite=overwrite)
    if run_dir is None:  # a DDP rank other than 0
        return None
    staging.rename(run_dir / "baselines")
    (run_dir / "data_stats.json").write_text(json.dumps(stats, indent=2))
    _stage("4/5 evaluate and compare")
    evaluate_run(run_dir)
    compare([run_dir, *[run_dir / "baselines" / d.name for d in baseline_dirs]], run_dir / "comparison")
    console.print((run_dir / "comparison" / "comparison.md").read_text())
    _stage("5/5 report and model card")
    write_model_card(run_dir, comparison=run_dir / "comparison")
    html = write_report(run_dir, comparison=run_dir / "comparison")
    console.print(f"done in {time.perf_counter() - started:.0f} s: {run_dir} (report: {html})")
    return run_dir
