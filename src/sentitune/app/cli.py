"""The `sentitune` command line: thin wrappers over the Python API, flags generated from the config dataclasses."""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..core.errors import SentituneError
from ..data import DataConfig
from ..run.config import PRESETS, TrainConfig, load_config
from .budget import DEFAULT_TIME_BUDGET

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Fine-tune transformers for sentiment and prove they beat their baselines.")
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Inspect datasets.")
app.add_typer(data_app, name="data")
console = Console()
BACKEND_HELP = ("auto (when exported: openvino on a CPU with native bf16, onnx-int8 on one without; else torch), "
                "torch, or what "
                "`sentitune export` wrote: onnx (fp32) or onnx-int8 (onnxruntime), openvino (OpenVINO Runtime).")
# The words every command shares (docs/cli.md; tests/test_vocabulary.py holds every command to them): --output-dir
# names a folder written, --output a file written, --seed the training seed, --data-seed the data sample, and
# durations read as 90s, 10m or 1.5h (a bare number: seconds).
SEED_HELP = ("Training seed: the new weights' initialisation, the order of the examples, dropout and masking "
             "(the data sample: --data-seed).")
DATA_SEED_HELP = "Data seed: which examples every sample and split draws."
DURATION = "a duration such as 90s, 10m or 1.5h; a bare number is seconds"
BASELINES_HELP = ("Baseline families to score on the same test examples, comma-separated: majority, tfidf, vader, "
                  "base, star (star needs the Hub or a local star model).")
FLAG_HELP = {"seed": SEED_HELP, "data_seed": DATA_SEED_HELP}
AUTO_SIZES = {"batch_size": " A number, or auto: the fastest micro-batch measured on this machine, accumulated to "
                            "this size.",
              "eval_batch_size": " A number, or auto: the fastest measured on this machine."}
SET_BY_AUTO = ("auto_batch_size", "auto_eval_batch_size")
EXPORT_BACKENDS = ("onnx", "onnx-int8", "openvino")


def _warn(message: str) -> None:
    Console(stderr=True).print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


def _renamed(ctx: typer.Context, value, param: str, new: str, old_value, old: str):
    """The value of option `new` (Python name `param`), or of its old hidden spelling `old`, with a one-line
    deprecation warning; both on one command line is an error."""
    if old_value is None:
        return value
    if getattr(ctx.get_parameter_source(param), "name", None) == "COMMANDLINE":
        raise SentituneError(f"{old}: the old spelling of {new}; pass {new} only.")
    _warn(f"{old} is deprecated; use {new}.")
    return old_value


def _old(flag: str, help: str = "Deprecated spelling."):
    """A hidden option that keeps an old spelling working (see `_renamed`)."""
    return typer.Option(None, flag, hidden=True, help=help)


@app.callback()
def _quiet() -> None:
    from ..models.loading import quiet_transformers

    quiet_transformers()


# DataConfig fields whose names clash with TrainConfig's get a `data-` prefix; DataConfig.data is plain --data.
_DATA_FLAG = {"seed": "data_seed"}


def _base_type(hint):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else hint


def _config_parameters(cls, rename: dict[str, str] | None = None) -> list[inspect.Parameter]:
    """One optional CLI flag per dataclass field, with the field's help string; nested dataclasses flattened."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        kind = _base_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            params += _config_parameters(kind, _DATA_FLAG)
            continue
        name = (rename or {}).get(f.name, f.name)
        if name in SET_BY_AUTO:  # `--batch-size auto` sets these
            continue
        kind = str if name in AUTO_SIZES else kind
        flag = "--" + name.replace("_", "-")
        decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
        text = FLAG_HELP.get(name, f.metadata.get("help", "")) + AUTO_SIZES.get(name, "")
        option = typer.Option(None, *decls, help=text, show_default=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[kind]))
    return params


def _overrides(kwargs: dict) -> dict:
    """Split flat CLI values into TrainConfig fields and the nested `data` fields."""
    data_fields = {f.name for f in dataclasses.fields(DataConfig)}
    reverse = {v: k for k, v in _DATA_FLAG.items()}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"data"}
    out: dict = {"data": {}}
    for name, value in kwargs.items():
        if name in train_fields:
            out[name] = value
        elif reverse.get(name, name) in data_fields:
            out["data"][reverse.get(name, name)] = value
    return out


def with_config_flags(default_preset: str | None = None):
    """Decorate a command so that it takes every config field as a flag and receives a built TrainConfig."""

    def wrap(fn):
        def command(config: Optional[Path] = None, preset: Optional[str] = default_preset, **kwargs):
            own = {k: kwargs.pop(k) for k in list(kwargs) if k in fn_params}
            return fn(load_config(config, preset, _overrides(kwargs)), **own)

        fn_params = [p for p in inspect.signature(fn).parameters if p != "cfg"]
        head = [
            inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY,
                              default=typer.Option(None, help="YAML file of config fields (flags override it)."),
                              annotation=Optional[Path]),
            inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY,
                              default=typer.Option(default_preset,
                                                   help="One of: " + ", ".join(PRESETS) + "."),
                              annotation=Optional[str]),
        ]
        hints = typing.get_type_hints(fn)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[n])
               for n, p in inspect.signature(fn).parameters.items() if n != "cfg"]
        command.__signature__ = inspect.Signature(head + own + _config_parameters(TrainConfig))
        command.__name__, command.__doc__ = fn.__name__, fn.__doc__
        return command

    return wrap


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _print_metrics(title: str, metrics: dict) -> None:
    binary = metrics["test"].get("n_classes", 2) == 2
    extra = ("F1", "ROC-AUC") if binary else ("macro recall", "MAE" if "mae" in metrics["test"] else "weighted F1")
    keys = ("f1", "roc_auc") if binary else ("recall_macro", "mae" if "mae" in metrics["test"] else "f1_weighted")
    table = Table(title=title)
    for column in ("split", "n", "accuracy", "95% CI", "macro F1", *extra):
        table.add_column(column)
    for split in ("validation", "test"):
        m = metrics[split]
        lo, hi = m["accuracy_ci95"]
        table.add_row(split, str(m["n"]), f"{m['accuracy']:.4f}", f"[{lo:.3f}, {hi:.3f}]", _fmt(m.get("f1_macro")),
                      *(_fmt(m.get(k)) for k in keys))
    console.print(table)


@app.command("train")
@with_config_flags()
def train_command(cfg: TrainConfig, resume: bool = typer.Option(False, help="Continue the interrupted run of the same "
                                                                            "--name from its last checkpoint."),
                  overwrite: bool = typer.Option(False, help="Replace an existing run of the same --name.")):
    """Fine-tune a model and write runs/<name>/ (model, metrics, predictions, logs, model card)."""
    from ..run.folder import RunFolder
    from .workflow import fine_tune

    run_dir = fine_tune(cfg, resume=resume, overwrite=overwrite)
    if run_dir is None:  # a DDP rank other than 0
        return
    metrics = RunFolder(run_dir).metrics()
    if "distillation" in metrics:  # --self-distill: the run taught this student
        _print_teacher(Path(cfg.output_dir) / cfg.name, metrics["distillation"])
    _print_metrics(f"{run_dir}  ({metrics['train']['wall_time_s']:.0f} s, "
                   f"{metrics['train']['train_examples_per_s']:.1f} train ex/s)", metrics)


def distill_command(teacher: Path, config: Optional[Path] = None, preset: Optional[str] = None, resume: bool = False,
                    overwrite: bool = False, **flags):
    """Distil a finished run into a smaller student (K of its layers, or --student MODEL) trained on its soft labels,
    plus optional unlabelled --transfer-data; writes a normal run folder. Training settings start from the
    teacher's config (same data and test examples); --preset, --config and flags override them."""
    from ..run.config import DistillConfig, load_distill_config
    from ..run.folder import RunFolder
    from .workflow import distill_student

    names = {f.name for f in dataclasses.fields(DistillConfig)}
    dcfg = load_distill_config({k: flags.pop(k) for k in list(flags) if k in names})
    run_dir = distill_student(teacher, dcfg, _overrides(flags), config, preset, resume, overwrite)
    metrics = RunFolder(run_dir).metrics()
    _print_teacher(teacher, metrics["distillation"])
    _print_metrics(f"{run_dir}  ({metrics['train']['wall_time_s']:.0f} s, "
                   f"{metrics['train']['train_examples_per_s']:.1f} train ex/s)", metrics)


def _print_teacher(teacher: Path, taught: dict) -> None:
    console.print(f"teacher {teacher}: test accuracy {_fmt(taught['teacher']['test_accuracy'])}, "
                  f"{taught['teacher']['parameters'] or 0:,} parameters (soft labels: {taught['teacher']['name']}); "
                  f"student: {taught['student']['parameters']:,} parameters", markup=False, highlight=False)


def _distill_signature() -> inspect.Signature:
    from ..run.config import DistillConfig

    keyword = inspect.Parameter.KEYWORD_ONLY
    head = [
        inspect.Parameter("teacher", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Path,
                          default=typer.Argument(..., help="A finished run folder: the teacher.")),
        inspect.Parameter("config", keyword, annotation=Optional[Path], default=typer.Option(
            None, help="YAML file of training fields for the student (flags override it).")),
        inspect.Parameter("preset", keyword, annotation=Optional[str], default=typer.Option(
            None, help="Training preset over the teacher's config: one of " + ", ".join(PRESETS) + ".")),
        inspect.Parameter("resume", keyword, annotation=bool, default=typer.Option(
            False, help="Continue the interrupted distillation of the same --name (cached teacher logits reused).")),
        inspect.Parameter("overwrite", keyword, annotation=bool, default=typer.Option(
            False, help="Replace an existing run of the same --name.")),
    ]
    train_flags = [p for p in _config_parameters(TrainConfig) if p.name != "model"]  # the student is its own flag
    return inspect.Signature(head + _config_parameters(DistillConfig) + train_flags)


distill_command.__signature__ = _distill_signature()
app.command("distill")(distill_command)


def adapt_command(resume: bool = False, overwrite: bool = False, **flags):
    """Continue masked-language-model training of a model on the task's own texts (train and unlabelled splits,
    never test) with whole-word masking; writes <output_dir>/<name>/, a model folder for `sentitune train --model`."""
    from ..run.folder import read_json
    from ..training.adapt import adapt, load_adapt_config

    folder = adapt(load_adapt_config(_adapt_values(flags)), resume=resume, overwrite=overwrite)
    facts = read_json(folder / "adapt.json")
    scored = (f", held-out MLM loss {facts['eval_loss']:.4f} (perplexity {facts['eval_perplexity']:.2f})"
              if facts.get("eval_loss") is not None else "")
    rate = f", {facts['tokens_per_s']:,.0f} tokens/s" if facts.get("tokens_per_s") else ""
    console.print(f"wrote {folder}: {facts['steps']} steps{rate}, last MLM loss {_fmt(facts['train_loss'])}{scored}; "
                  f"fine-tune it with: sentitune train --model {folder}", markup=False, highlight=False)


def _adapt_values(flags: dict) -> dict:
    """Flat CLI values as AdaptConfig fields and the nested `data` fields."""
    from ..run.config import AdaptConfig

    own = {f.name for f in dataclasses.fields(AdaptConfig)} - {"data"}
    reverse = {v: k for k, v in _DATA_FLAG.items()}
    return {**{k: v for k, v in flags.items() if k in own},
            "data": {reverse.get(k, k): v for k, v in flags.items() if k not in own}}


def _adapt_signature() -> inspect.Signature:
    from ..run.config import AdaptConfig

    keyword = inspect.Parameter.KEYWORD_ONLY
    head = [inspect.Parameter("resume", keyword, annotation=bool, default=typer.Option(
                False, help="Continue the interrupted adaptation of the same --name from its last checkpoint.")),
            inspect.Parameter("overwrite", keyword, annotation=bool, default=typer.Option(
                False, help="Replace an existing result of the same --name."))]
    return inspect.Signature(head + _config_parameters(AdaptConfig))


adapt_command.__signature__ = _adapt_signature()
app.command("adapt")(adapt_command)


@data_app.command("stats")
def data_stats_command(
    ctx: typer.Context,
    data: Optional[str] = typer.Option(None, help="Dataset (as for train --data)."),
    model: Optional[str] = typer.Option(None, help="Tokenizer for the length statistics (default: "
                                                   "the offline default model)."),
    text_column: str = typer.Option("text"), label_column: str = typer.Option("label"),
    label_threshold: Optional[float] = typer.Option(None, help="Labels are star ratings: >= threshold is positive."),
    output_dir: Path = typer.Option(Path("reports/data"), help="Folder for stats.json and token_lengths.png."),
    out: Optional[Path] = _old("--out"),
):
    """Counts per split and label, ratings, duplicates, token length percentiles, and a length histogram."""
    from ..data.stats import dataset_stats, stats_for_json, stats_table
    from ..evaluation.plots import plot_lengths
    from ..models.loading import default_model, load_tokenizer

    output_dir = _renamed(ctx, output_dir, "output_dir", "--output-dir", out, "--out")
    cfg = DataConfig(**({"data": data} if data else {}), text_column=text_column, label_column=label_column,
                     label_threshold=label_threshold)
    stats = dataset_stats(cfg, load_tokenizer(model or default_model()))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "stats.json").write_text(json.dumps(stats_for_json(stats), indent=2))
    png = plot_lengths(stats, output_dir / "token_lengths.png")
    console.print(stats_table(stats))
    console.print(f"wrote {output_dir / 'stats.json'} and {png}")


@app.command("predict")
def predict_command(model: Path = typer.Argument(..., help="A run folder or its model/ folder."),
                    texts: list[str] = typer.Argument(None, help="Texts to classify (or a file: --input)."),
                    batch_size: Optional[str] = typer.Option(None, help="Texts per batch (default: the fastest "
                                                                        "measured for the backend when it was "
                                                                        "benchmarked); auto: measured now, on the "
                                                                        "first texts."),
                    windows: bool = typer.Option(False, help="Read long texts whole: "
                                                             "average over half-overlapping windows."),
                    backend: str = typer.Option("auto", help=BACKEND_HELP),
                    input_: Optional[str] = typer.Option(None, "--input", help="Score a whole file in chunks: .csv, "
                                                         ".tsv, .jsonl, .parquet or .txt (a text a line); - : JSON "
                                                         "lines on stdin. With --output."),
                    output: Optional[str] = typer.Option(None, help="With --input: the file to write, .csv, .tsv, "
                                                                    ".jsonl or .parquet (- : JSON lines on stdout)."),
                    text_column: str = typer.Option("text", help="With --input: the column holding the texts."),
                    chunk_size: int = typer.Option(10_000, help="With --input: rows read and scored at a time."),
                    resume: bool = typer.Option(False, help="With --input: continue a killed job into the same "
                                                            "--output, skipping the chunks it finished."),
                    overwrite: bool = typer.Option(False, help="With --input: replace an existing --output."),
                    engine: str = typer.Option("local", help="With --input: local (this process) or ray (Ray Data: "
                                               "a pool of actors, one model each; same output, not resumable)."),
                    ray_address: Optional[str] = typer.Option(None, help="With --engine ray: the cluster to join "
                                                              "(auto: this node's); default: a local instance."),
                    workers: int = typer.Option(2, help="With --engine ray: actors, each with its own model."),
                    threads: Optional[int] = typer.Option(None, help="With --engine ray: torch threads per actor "
                                                          "(default: its share of the CPUs)."),
                    file: Optional[Path] = _old("--file", "Deprecated: a text file, one review per line, printed as "
                                                          "for texts given as arguments.")):
    """Classify new texts with a fine-tuned model; prints one JSON line per text, or with --input/--output
    scores a file of any size (input columns kept; label, confidence and prob_<class> added)."""
    from ..inference.predict import SentimentModel
    from ..models.loading import model_folder

    batch_size = _batch_size(batch_size)
    if file:
        _warn("--file is deprecated; use --input FILE --output - (JSON lines on stdout).")
    if input_ or output:
        return _score_file(model, texts, file, input_, output, text_column, chunk_size, batch_size, backend,
                           resume, overwrite, windows, engine, {"address": ray_address, "workers": workers,
                                                                "threads": threads})
    model_dir = model_folder(model)
    if file:
        texts = _text_lines(file)
    if not texts:
        raise SentituneError("predict: no texts; pass them as arguments, or a file with --input FILE --output FILE "
                             "(- : JSON lines on stdout).")
    scorer = SentimentModel.from_pretrained(model_dir, backend=backend)
    if batch_size == "auto":
        from ..inference.batch_size import fastest_batch_size

        batch_size, rows = fastest_batch_size(scorer, texts[:512])
        Console(stderr=True).print(f"--batch-size auto: {batch_size}, the fastest of " + ", ".join(
            f"{r['batch_size']} ({r['examples_per_s']:.0f}/s)" for r in rows if r["fits"]) + ".", markup=False)
    for text, pred in zip(texts, scorer.predict(texts, batch_size, windows)):
        print(json.dumps({"text": text[:80], **pred}))


def _batch_size(value: str | None) -> int | str | None:
    """--batch-size of predict: None (the backend's own), a positive number, or auto (measured on the texts)."""
    if value is None or value == "auto":
        return value
    if not value.strip().isdigit() or int(value) < 1:
        raise SentituneError(f"--batch-size {value}: use a positive whole number of texts, or auto (the fastest "
                             "measured now on this machine).")
    return int(value)


def _score_file(model: Path, texts: list[str] | None, file: Path | None, input_: str | None, output: str | None,
                text_column: str, chunk_size: int, batch_size: int | None, backend: str, resume: bool,
                overwrite: bool, windows: bool, engine: str = "local", ray_options: dict | None = None) -> None:
    """`predict --input/--output`: stream the file through `sentitune.inference.batch.score_file` (or Ray Data,
    `sentitune.inference.batch_ray`); a summary on stderr."""
    from ..inference.batch import score_file

    if texts or file:
        given = "--file" if file else "texts as arguments"
        raise SentituneError(f"predict: --input scores a file; pass {given} without --input/--output.")
    if not (input_ and output):
        raise SentituneError("predict: --input and --output go together (- for JSON lines on stdin/stdout).")
    if engine not in ("local", "ray"):
        raise SentituneError(f"--engine {engine}: use local or ray.")
    if engine == "ray":
        from ..inference.batch_ray import score_file_ray

        if batch_size == "auto":
            raise SentituneError("--batch-size auto: with --engine ray each actor scores with the size given; "
                                 "measure it with --engine local first (its summary names it), then pass it.")
        if resume:
            raise SentituneError("--resume: --engine ray does not resume (a failed job leaves no output); "
                                 "rerun it, or use --engine local.")
        summary = score_file_ray(model, input_, output, text_column, chunk_size, batch_size, backend, overwrite,
                                 windows, **(ray_options or {}))
    else:
        summary = score_file(model, input_, output, text_column, chunk_size, batch_size, backend, resume,
                             overwrite, windows)
    reused = f", {summary['parts_reused']} finished chunk(s) reused" if summary["parts_reused"] else ""
    empty = f", {summary['empty']} empty text(s) left unscored" if summary["empty"] else ""
    Console(stderr=True).print(f"wrote {summary['output']}: {summary['rows']:,} rows in {summary['seconds']:.1f} s"
                               f"{reused}{empty}", markup=False, highlight=False, soft_wrap=True)


def _text_lines(file: Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file, split on newlines only (reviews may hold other Unicode line breaks)."""
    from ..core.io import decode_utf8

    if not file.is_file():
        raise SentituneError(f"--file {file}: file not found.")
    text = decode_utf8(file.read_bytes(), f"--file {file}")
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


@app.command("explain")
def explain_command(ctx: typer.Context, model: Path = typer.Argument(..., help="A run folder or its model/ folder."),
                    text: str = typer.Argument(..., help="The text to explain."),
                    target: Optional[str] = typer.Option(None, help="Explain this class (default: the predicted one)."),
                    steps: int = typer.Option(32, help="Integration steps: more lower the convergence delta, "
                                                       "proportionally slower."),
                    output: Optional[Path] = typer.Option(None, help="Also write the explanation to this file, as "
                                                                     "an HTML snippet."),
                    html: Optional[Path] = _old("--html")):
    """Which words moved the decision: Integrated Gradients per word, green for the class, red against."""
    from ..inference.explain import explain, html_snippet, rich_text, summary
    from ..inference.predict import SentimentModel
    from ..models.loading import model_folder

    output = _renamed(ctx, output, "output", "--output", html, "--html")
    found = explain(SentimentModel.from_pretrained(model_folder(model), backend="torch"), text, target, steps)
    console.print(summary(found), markup=False, highlight=False)
    console.print(rich_text(found))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(html_snippet(found), encoding="utf-8")
        console.print(f"wrote {output}", markup=False, highlight=False)


@app.command("run")
@with_config_flags(default_preset="cpu-quick")
def run_command(cfg: TrainConfig,
                baselines: str = typer.Option("majority,tfidf,vader,base", help=BASELINES_HELP),
                overwrite: bool = typer.Option(False, help="Replace an existing run of the same --name."),
                time_budget: str = typer.Option(DEFAULT_TIME_BUDGET,
                                                help=f"Size the job to this long on this machine ({DURATION}; "
                                                "none: the preset's sizes, estimate printed)."),
                probe_per_class: int = typer.Option(500, help="Training examples per class "
                                                              "for the base linear probe."),
                ensemble: str = typer.Option("none", help="tfidf: also compare the fine-tuned model averaged with "
                                                          "TF-IDF + LR (its own row; the model alone stays the "
                                                          "headline)."),
                resume: bool = typer.Option(False, help="Go on with an interrupted job of the same --name, as it "
                                                        "was planned: its baselines and training checkpoints are "
                                                        "kept.")):
    """The main job: data -> baselines -> fine-tune -> evaluate -> compare -> report (default preset: cpu-quick)."""
    from .budget import parse_duration
    from .workflow import run_main_job

    run_main_job(cfg, tuple(b for b in baselines.split(",") if b), probe_per_class, overwrite,
                 parse_duration(time_budget, "--time-budget"), ensemble=ensemble, resume=resume)


@app.command("evaluate")
def evaluate_command(run: Path = typer.Argument(..., help="A run folder."),
                     data: Optional[str] = typer.Option(None, help="Evaluate on another labelled dataset (any --data "
                                                                   "form) instead of the run's own test split."),
                     text_column: str = typer.Option("text"), label_column: str = typer.Option("label"),
                     label_threshold: Optional[float] = typer.Option(None),
                     labels: Optional[str] = typer.Option(None, help="Classes of --data in the model's order "
                                                                     "(default: inferred)."),
                     split: str = typer.Option("test", help="Split of --data to score whole "
                                                            "(a single file is scored whole)."),
                     top_n: int = typer.Option(10, help="Most confident errors listed per kind."),
                     backend: str = typer.Option("torch", help=BACKEND_HELP + " With --data only."),
                     windows: bool = typer.Option(False, help="Read long reviews whole (average over half-overlapping "
                                                              "windows). With --data only."),
                     explain_errors: int = typer.Option(5, help="Word attributions (integrated gradients, torch) "
                                                                "for the most confident errors; 0: none.")):
    """Metrics with intervals, calibration (and temperature scaling), slices, confident errors, plots."""
    from ..evaluation.evaluate import evaluate_run

    data_cfg = DataConfig(data=data, text_column=text_column, label_column=label_column,
                          label_threshold=label_threshold, labels=labels) if data else None
    if (backend != "torch" or windows) and data_cfg is None:
        raise SentituneError("--backend/--windows: re-predicting needs --data "
                             "(without it the run's saved predictions are scored).")
    result = evaluate_run(run, data_cfg, split=split, top_n=top_n, backend=backend, windows=windows,
                          explain_errors=explain_errors)
    console.print_json(json.dumps({k: result[k] for k in ("metrics",) if k in result}, default=str))


def _evaluated(run: Path) -> None:
    """Evaluate `run` first when it has predictions but no evaluation.json: reporting only reads the evaluation (a
    run kept without predictions is reported from its recorded test metrics)."""
    from ..run.folder import RunFolder

    folder = RunFolder(run)
    if not folder.evaluation() and folder.has_predictions():
        from ..evaluation.evaluate import evaluate_run

        evaluate_run(run)


@app.command("report")
def report_command(ctx: typer.Context, run: Path = typer.Argument(..., help="A run folder."),
                   comparison: Optional[Path] = typer.Option(None, help="comparison.json (default: RUN/comparison/)."),
                   study: Optional[Path] = typer.Option(None, help="A tuning study folder to include."),
                   output_dir: Optional[Path] = typer.Option(None, help="Folder for report.html and report.md "
                                                                        "(default: the run folder)."),
                   out: Optional[Path] = _old("--out")):
    """A self-contained HTML report and a Markdown twin, from the run's real numbers."""
    from ..reporting.report import write_report
    from ..run.folder import RunFolder

    output_dir = _renamed(ctx, output_dir, "output_dir", "--output-dir", out, "--out")
    _evaluated(run)
    comparison = comparison or (RunFolder(run).comparison_dir if RunFolder(run).comparison_dir.is_dir() else None)
    console.print(f"wrote {write_report(run, output_dir, comparison=comparison, study_dir=study)}")


@app.command("present")
def present_command(ctx: typer.Context, run: Path = typer.Argument(..., help="A run folder."),
                    output: Optional[Path] = typer.Option(None, help="File for the deck "
                                                                     "(default: RUN/presentation.html)."),
                    out: Optional[Path] = _old("--out"),
                    video: bool = typer.Option(False, "--video", help="Render the deck as a narrated video too: "
                                               "DECK.mp4 (1920x1080, H.264 and AAC, a chapter per slide) and DECK.vtt "
                                               "captions beside the deck; needs chromium, ffmpeg and espeak-ng."),
                    max_minutes: Optional[float] = typer.Option(None, min=0.1, help="With --video: a talk of at most "
                                                                "this many minutes (each slide keeps its first, most "
                                                                "important sentences).")):
    """A self-contained HTML slide deck for a 15-minute walkthrough of the run: arrow keys or space to move, `s` for
    speaker notes, print for one slide per page. --video also renders it as a narrated video."""
    from ..reporting.present import write_presentation

    output = _renamed(ctx, output, "output", "--output", out, "--out")
    if max_minutes is not None and not video:
        raise SentituneError("--max-minutes: only with --video.")
    _evaluated(run)
    deck = write_presentation(run, output)
    console.print(f"wrote {deck}")
    if video:
        from ..reporting.video import write_video

        made = write_video(run, deck, max_minutes=max_minutes)
        console.print(f"wrote {made.path} ({made.seconds / 60:.1f} min, {made.sentences} of {made.available} "
                      f"sentences, rendered in {made.render_s / 60:.1f} min) and {made.captions}")


@app.command("baseline")
def baseline_command(ctx: typer.Context,
                     baselines: str = typer.Option("majority,tfidf,vader,base", help=BASELINES_HELP),
                     data: Optional[str] = typer.Option(None, help="Dataset (as for train --data)."),
                     labels: Optional[str] = typer.Option(None, help="Classes in order, lowest first "
                                                                     "(as for train --labels)."),
                     test_per_class: Optional[int] = typer.Option(None, help="Test sample per class (None: "
                                                                             "the whole test split)."),
                     data_seed: int = typer.Option(42, help=DATA_SEED_HELP),
                     star_model: Optional[str] = typer.Option(None, help="Star-rating model id or folder for `star`."),
                     base_model: Optional[str] = typer.Option(None, help="Encoder for `base` (default: "
                                                                         "the offline default model)."),
                     probe_per_class: int = typer.Option(2000, help="Training examples per class "
                                                                    "for the `base` linear probe."),
                     output_dir: Path = typer.Option(Path("runs/baselines"), help="Folder for one sub-folder "
                                                                                  "per baseline entry."),
                     names: Optional[str] = _old("--names"),
                     seed: Optional[int] = _old("--seed", "Deprecated spelling of --data-seed (the data sample)."),
                     out: Optional[Path] = _old("--out")):
    """Score baselines on a test set; each entry records exactly which examples it used."""
    from ..core.labels import LabelScheme
    from ..data import examples_descriptor, prepare_splits
    from .workflow import score_baselines

    baselines = _renamed(ctx, baselines, "baselines", "--baselines", names, "--names")
    data_seed = _renamed(ctx, data_seed, "data_seed", "--data-seed", seed, "--seed")
    output_dir = _renamed(ctx, output_dir, "output_dir", "--output-dir", out, "--out")
    cfg = DataConfig(**({"data": data} if data else {}), labels=labels, test_per_class=test_per_class,
                     seed=data_seed)
    splits, report = prepare_splits(cfg)
    options = {"star": {"model": star_model} if star_model else {},
               "base": {"probe_per_class": probe_per_class, **({"model": base_model} if base_model else {})}}
    score_baselines(splits, LabelScheme.from_dict(report["labels"]), examples_descriptor(splits["test"], "test", cfg),
                    [n for n in baselines.split(",") if n], output_dir, options)


@app.command("compare")
def compare_command(ctx: typer.Context,
                    entries: list[Path] = typer.Argument(..., help="Run folders and baseline folders "
                                                                   "(or folders of them)."),
                    output_dir: Path = typer.Option(Path("reports/comparison"), help="Folder for "
                                                                                     "comparison.md/.json/.png."),
                    allow_different_examples: bool = typer.Option(False, help="Compare entries scored on different "
                                                                              "test examples (no paired test)."),
                    out: Optional[Path] = _old("--out")):
    """Side-by-side table with 95% intervals and McNemar tests against the best baseline."""
    from ..evaluation.compare import compare, markdown

    output_dir = _renamed(ctx, output_dir, "output_dir", "--output-dir", out, "--out")
    console.print(markdown(compare(list(entries), output_dir, allow_different_examples)), markup=False)


@app.command("tune")
@with_config_flags()
def tune_command(cfg: TrainConfig,
                 study: Path = typer.Option(Path("studies/sentitune"), help="Study folder (storage, trials/, "
                                                                            "best.yaml, plots/)."),
                 n_trials: int = typer.Option(8, help="Finished trials the study should reach "
                                                      "(across sessions and workers)."),
                 timeout: Optional[str] = typer.Option(None, help=f"Stop this session after this long ({DURATION})."),
                 space: Optional[Path] = typer.Option(None, help="YAML search space (default: lr, epochs, "
                                                                 "weight decay, dropout, warmup, batch size)."),
                 storage: Optional[str] = typer.Option(None, help="Optuna storage URL "
                                                                  "(default: sqlite in the study folder; "
                                                                  "postgresql://... to share across machines)."),
                 pruner: str = typer.Option("median", help="median, hyperband or none."),
                 sampler_seed: int = typer.Option(42, help="TPE sampler seed.")):
    """Optuna search on validation F1 (never test); re-run the same command to resume after a crash."""
    from ..core.extras import require
    from .budget import parse_duration

    seconds = parse_duration(timeout, "--timeout")
    require("tune", what="sentitune tune")
    from ..training.tune import load_space, tune

    result = tune(study, cfg, load_space(space), n_trials, seconds, storage, pruner, sampler_seed)
    console.print(f"best validation score {result.best_value:.4f} with {result.best_params}; "
                  f"retrain with: sentitune train --config {study / 'best.yaml'}", markup=False)


@app.command("serve")
def serve_command(model: Path = typer.Argument(..., help="A run folder or its model/ folder."),
                  host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000),
                  backend: str = typer.Option("auto", help=BACKEND_HELP),
                  batching: bool = typer.Option(True, help="Score concurrent /predict requests together in one "
                                                           "model call (--no-batching: each in its own thread)."),
                  max_in_flight: Optional[int] = typer.Option(None, min=1, help="Requests admitted at once; more get "
                                                                                "503 (default 256 with batching, "
                                                                                "8 without).")):
    """Serve POST /predict, POST /explain, GET /health and a page to try them at / over HTTP."""
    from ..inference.serve import serve
    from ..models.loading import model_folder

    serve(model_folder(model), host, port, backend, batching, max_in_flight)


@app.command("export")
def export_command(model: Path = typer.Argument(..., help="A run folder or its model/ folder."),
                   backend: Optional[list[str]] = typer.Option(
                       None, metavar="<name[,name]>",
                       help="What to write, repeated or comma-separated: onnx (onnx/model.onnx, fp32), onnx-int8 "
                            "(onnx/model_quantized.onnx, with model.onnx), openvino (openvino/openvino_model.xml). "
                            "Default: onnx,onnx-int8, and openvino when the package openvino is installed."),
                   check: int = typer.Option(500, help="Score this many of the run's test texts with every backend "
                                                       "(accuracy, agreement, speed -> onnx/quality.json); 0: skip."),
                   quantize: Optional[bool] = _old("--quantize/--no-quantize", "Deprecated: --backend onnx-int8."),
                   openvino: Optional[bool] = _old("--openvino/--no-openvino", "Deprecated: --backend openvino.")):
    """Write ONNX graphs for onnxruntime (onnx/model.onnx, onnx/model_quantized.onnx) and an OpenVINO model into the
    model folder."""
    from ..evaluation.backends import backend_quality
    from ..inference.export import export_onnx, export_openvino

    chosen = _export_backends(backend, quantize, openvino)
    paths = export_onnx(model, "onnx-int8" in chosen) if chosen & {"onnx", "onnx-int8"} else []
    paths += export_openvino(model) if "openvino" in chosen else []
    for path in paths:
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    quality = backend_quality(model, check)
    for name, row in (quality or {}).get("backends", {}).items():
        print(f"{name}: accuracy {row['accuracy']:.4f}, agrees with torch on {row['agreement_with_torch']:.2%}, "
              f"{row['examples_per_s']} texts/s ({quality['texts']} test texts)")


def _export_backends(given: list[str] | None, quantize: bool | None, openvino: bool | None) -> set[str]:
    """The backends `export --backend` names (default: onnx and onnx-int8, and openvino where it is installed),
    adjusted by the old --[no-]quantize and --[no-]openvino flags (each with a deprecation warning)."""
    from ..core.extras import installed

    chosen = {name.strip() for value in given or [] for name in value.split(",") if name.strip()}
    unknown = sorted(chosen - set(EXPORT_BACKENDS))
    if unknown or (given and not chosen):
        raise SentituneError(f"--backend {','.join(unknown) or repr(''.join(given))}: use {', '.join(EXPORT_BACKENDS)} "
                             "(repeat --backend or separate them with commas).")
    if not given:
        chosen = {"onnx", "onnx-int8"} | ({"openvino"} if installed("openvino") else set())
    for old, value, name in (("--quantize", quantize, "onnx-int8"), ("--openvino", openvino, "openvino")):
        if value is not None:
            _warn(f"{old if value else '--no-' + old[2:]} is deprecated; use --backend (onnx, onnx-int8, openvino).")
            chosen = chosen | {name} if value else chosen - {name}
    if not chosen:
        raise SentituneError("--backend: nothing left to export; name at least one of "
                             f"{', '.join(EXPORT_BACKENDS)}.")
    return chosen


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except SentituneError as exc:
        console_err = Console(stderr=True)
        console_err.print("error:", style="bold red", end=" ")
        console_err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, typer.Abort) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except typer.TyperException as exc:  # usage errors (unknown flag, bad value) arrive here with standalone_mode=False
        if type(exc).__name__ == "NoArgsIsHelpError":  # `sentitune` alone: the help, not an error
            print(exc.format_message())
            sys.exit(0)
        command = " ".join(a for a in sys.argv[1:3] if not a.startswith("-"))
        print(f"error: {exc.format_message()} (see `sentitune {command} --help`)", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
