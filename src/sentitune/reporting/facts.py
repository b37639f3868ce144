"""The facts of a run, gathered once: what the report, the slide deck and the model card all render.

`run_facts(run)` reads everything through `RunFolder` and returns one dict, its lessons (`lessons.lessons`)
included; the renderers only format it. Reading never evaluates: a run without evaluation.json is described by the
test metrics recorded at the end of training (`recorded_only`), and the renderers say what that leaves out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..core.errors import SentituneError
from ..core.labels import LabelScheme
from ..core.metrics import per_class
from ..models.loading import model_id
from ..run.folder import RunFolder, read_comparison, read_json
from .lessons import lessons

FINE_TUNED = "fine-tuned"  # the `kind` of a fine-tuned run's row in a comparison table
STUDY = "study"  # a hyperparameter study kept inside the run folder
SHARE_TOLERANCE = 0.03  # train and test class shares "differ" when one class's share moves by more than this
SPLITS_WITH_SHARES = ("train", "test")


# ---------------------------------------------------------------- datasets and metrics


@dataclass(frozen=True)
class Dataset:
    """What is known about a data source: Hub id, display name, what its texts are, and its official metric."""

    id: str | None
    name: str
    domain: str  # what the texts are: "English tweets"
    unit: str  # what one example is called: "tweets"
    official: str | None = None  # the metric the benchmark ranks systems by
    config: str | None = None  # the Hub dataset's configuration
    caveat: str | None = None  # a limitation of the labels worth a line in the card


KNOWN_DATASETS: tuple[tuple[tuple[str, ...], Dataset], ...] = (
    (("imdb",), Dataset("stanfordnlp/imdb", "IMDB", "English movie reviews", "reviews", caveat=(
        "Labels come from star ratings (positive >= 7, negative <= 4): mixed, middling reviews are absent from "
        "training and will be forced into one of the two classes."))),
    (("tweet_eval", "tweeteval"), Dataset("cardiffnlp/tweet_eval", "TweetEval (sentiment)", "English tweets", "tweets",
                                          official="recall_macro", config="sentiment", caveat=(
        "TweetEval's training tweets are mostly neutral and positive while its test tweets lean negative, so "
        "accuracy rewards the training majority; macro recall, the official metric, weighs every class alike."))),
    (("sst5", "sst-5", "sst_5"), Dataset("SetFit/sst5", "SST-5", "English sentences from film reviews", "sentences")),
)


def dataset_of(source: str | None) -> Dataset:
    """The known dataset behind a data source (a Hub id or a local copy), else a plain description of it."""
    text = str(source or "").lower()
    known = next((d for keys, d in KNOWN_DATASETS if any(k in text for k in keys)), None)
    if known:
        return known
    source = str(source or "data")
    on_hub = not Path(source).exists() and "/" in source and not source.startswith((".", "/", "~"))
    name = source if on_hub else Path(source).name
    return Dataset(source if on_hub else None, name, f"texts like those in `{name}`", "texts")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    interval: str | None = None  # how its 95% interval was computed
    lower_is_better: bool = False


METRICS = {m.key: m for m in (
    Metric("accuracy", "accuracy", "Wilson"), Metric("recall_macro", "macro recall", "bootstrap"),
    Metric("f1_macro", "macro F1", "bootstrap"), Metric("precision_macro", "macro precision"),
    Metric("f1_weighted", "weighted F1", "bootstrap"), Metric("f1", "F1"), Metric("precision", "precision"),
    Metric("recall", "recall"), Metric("roc_auc", "ROC-AUC"), Metric("pr_auc", "PR-AUC"),
    Metric("mae", "mean absolute error (classes)", lower_is_better=True),
    Metric("within_one", "accuracy within one class"),
    Metric("qwk", "quadratic weighted kappa"), Metric("log_loss", "log loss", lower_is_better=True),
    Metric("ece", "expected calibration error (15 bins)", lower_is_better=True),
)}
POSITIVE_CLASS = ("f1", "precision", "recall", "pr_auc")
COMPARISON_KEYS = ("accuracy", "recall_macro", "f1_macro", "f1", "roc_auc", "mae", "qwk")


def metric_label(key: str, labels: LabelScheme) -> str:
    """A metric's name for a reader, naming the positive class for binary-only metrics."""
    if key in POSITIVE_CLASS and labels.binary:
        return f"{METRICS[key].label} ({labels.names[1]})"
    if key == "roc_auc" and not labels.binary:
        return "ROC-AUC (macro, one-vs-rest)"
    return METRICS[key].label if key in METRICS else key


def headline_keys(labels: LabelScheme, official: str | None) -> list[str]:
    """The metrics a reader sees first: the official one, then accuracy/F1/ROC-AUC (binary) or accuracy and
    macro F1/recall (more classes), then MAE and QWK on an ordinal scale."""
    keys = ["accuracy", "f1", "roc_auc"] if labels.binary else ["accuracy", "f1_macro", "recall_macro"]
    keys += ["mae", "qwk"] if labels.ordinal else []
    return official_first(keys, official)


def primary_metric(labels: LabelScheme, official: str | None) -> str:
    """The one metric systems are ranked by: the official one, else accuracy (binary) or macro F1."""
    return official or ("accuracy" if labels.binary else "f1_macro")


def metric_row(key: str, metrics: dict, labels: LabelScheme, official: str | None) -> dict:
    meta = METRICS.get(key, Metric(key, key))
    return {"key": key, "label": metric_label(key, labels), "value": metrics.get(key),
            "ci": metrics.get(f"{key}_ci95"), "interval": meta.interval, "official": key == official,
            "lower_is_better": meta.lower_is_better}


def headline_note(row: dict, dataset: Dataset) -> str:
    """'official metric of X; bootstrap interval; lower is better', as far as each applies."""
    parts = (f"official metric of {dataset.name}" if row["official"] else None,
             f"{row['interval']} interval" if row["ci"] else None,
             "lower is better" if row["lower_is_better"] else None)
    return "; ".join(p for p in parts if p)


def headline(metrics: dict, labels: LabelScheme, official: str | None, dataset: Dataset) -> list[dict]:
    rows = [metric_row(k, metrics, labels, official) for k in headline_keys(labels, official)
            if metrics.get(k) is not None]
    return [{**row, "note": headline_note(row, dataset)} for row in rows]


def official_first(keys, official: str | None) -> list[str]:
    return [official, *(k for k in keys if k != official)] if official else list(keys)


def results_table(columns: list[tuple[str, dict]], evaluated: dict, labels: LabelScheme, official: str | None) -> dict:
    """Every metric the evaluated split has, official first, with one value per column ({title: metrics})."""
    rows = [{**metric_row(k, evaluated, labels, official), "cells": [values.get(k) for _, values in columns]}
            for k in official_first(METRICS, official) if evaluated.get(k) is not None]
    return {"columns": [title for title, _ in columns], "rows": rows}


def result_columns(evaluation: dict, recorded: dict, data: dict) -> list[tuple[str, dict]]:
    """(column title, metrics): validation when recorded, the evaluated split, and after temperature scaling."""
    split, t = evaluation.get("split", "test"), evaluation.get("temperature")
    columns = []
    if recorded.get("validation"):
        columns.append(("validation (in-sample)" if data.get("validation_in_train") else "validation",
                        recorded["validation"]))
    columns.append((split, evaluation["metrics"]))
    if t:
        columns.append((f"{split}, temperature-scaled (T = {t['value']:.3f})", t["metrics_after"]))
    return columns


def with_class_metrics(metrics: dict, labels: LabelScheme) -> dict:
    """`metrics` with per-class and macro figures derived from its confusion matrix where an older run lacks them."""
    if metrics.get("per_class") or not metrics.get("confusion_matrix"):
        return metrics
    cm = np.asarray(metrics["confusion_matrix"], int)
    classes = np.arange(len(cm))
    y = np.repeat(classes, cm.sum(1))
    pred = np.concatenate([np.repeat(classes, row) for row in cm])
    rows = per_class(y, pred, labels.names)
    derived = {"per_class": rows, "recall_macro": float(np.mean([r["recall"] for r in rows])),
               "precision_macro": float(np.mean([r["precision"] for r in rows])),
               "f1_macro": float(np.mean([r["f1"] for r in rows]))}
    return {**derived, **metrics}


# ---------------------------------------------------------------- classes


def shares_of(counts: dict, labels: LabelScheme) -> dict[str, float]:
    """Class shares from counts keyed by class id (as int or str)."""
    values = [counts.get(i, counts.get(str(i), 0)) for i in range(labels.n)]
    total = sum(values) or 1
    return {name: round(v / total, 4) for name, v in zip(labels.names, values)}


def class_shares(data: dict, labels: LabelScheme) -> dict[str, dict[str, float]]:
    """{train, test: {class: share}}: as the data report recorded them, else from its per-class counts."""
    recorded = data.get("class_shares") or {}
    counts = data.get("per_class") or {}
    return {split: recorded[split] if split in recorded else shares_of(counts[split], labels)
            for split in SPLITS_WITH_SHARES if split in recorded or split in counts}


def shares_differ(shares: dict[str, dict[str, float]], tolerance: float = SHARE_TOLERANCE) -> bool:
    if not all(split in shares for split in SPLITS_WITH_SHARES):
        return False
    train, test = (shares[s] for s in SPLITS_WITH_SHARES)
    return any(abs(train.get(name, 0) - test.get(name, 0)) > tolerance for name in set(train) | set(test))


def class_rows(metrics: dict, shares: dict[str, dict[str, float]]) -> list[dict]:
    """The per-class table: precision, recall, F1, support, and the class's train and test shares."""
    return [{**row, **{f"{split}_share": shares.get(split, {}).get(row["label"]) for split in SPLITS_WITH_SHARES}}
            for row in metrics.get("per_class", [])]


def weakest_class(metrics: dict) -> dict | None:
    """The class with the lowest recall (None for fewer than three classes, where the F1 pair tells it)."""
    rows = metrics.get("per_class") or []
    return min(rows, key=lambda r: r["recall"]) if len(rows) > 2 else None


def most_confused(metrics: dict, labels: LabelScheme) -> dict | None:
    """The largest off-diagonal cell of the confusion matrix: {true, pred, count, share of the true class}."""
    cm = np.asarray(metrics.get("confusion_matrix") or [[0]], int)
    off = cm - np.diag(np.diag(cm))
    if off.max() == 0:
        return None
    i, j = np.unravel_index(off.argmax(), off.shape)
    return {"true": labels.names[i], "pred": labels.names[j], "count": int(off[i, j]),
            "share": float(off[i, j] / max(cm[i].sum(), 1))}


def weakest_slices(slice_tables: dict[str, list[dict]], limit: int = 3, min_n: int = 20) -> list[dict]:
    """Up to `limit` groups of at least `min_n` examples, the weakest of each slice kind, weakest first (the
    by-class slice is left to the per-class facts)."""
    accuracy = lambda row: row["accuracy"]  # noqa: E731
    picks = [{"slice": name, **min(big, key=accuracy)} for name, rows in slice_tables.items() if name != "class"
             and (big := [r for r in rows if r["n"] >= min_n])]
    return sorted(picks, key=accuracy)[:limit]


def confusion(metrics: dict, labels: LabelScheme) -> dict:
    """The confusion matrix with class names and row shares, rows true and columns predicted."""
    cm = np.asarray(metrics["confusion_matrix"], int)
    shares = cm / cm.sum(1, keepdims=True).clip(min=1)
    return {"names": list(labels.names), "rows": [[{"count": int(c), "share": float(s)} for c, s in zip(*row)]
                                                  for row in zip(cm, shares)]}


# ---------------------------------------------------------------- the run


def hardware_text(hardware) -> str:
    """Where the run trained, in one line, from either recorded form: `machine.Runtime.describe()` or the older
    {platform, processor, cpu_threads, torch}."""
    if not isinstance(hardware, dict):
        return str(hardware or "unknown")
    threads = f"{hardware['cpu_threads']} CPU threads" if hardware.get("cpu_threads") else None
    cpu = hardware.get("cpu") or ", ".join(p for p in (hardware.get("processor"), threads) if p)
    parts = (hardware.get("gpu"), cpu, f"torch {hardware['torch']}" if hardware.get("torch") else None)
    return ", ".join(p for p in parts if p) or "unknown"


def max_length_fact(data: dict, config: dict, evaluation: dict) -> dict:
    """{value, source}: the token limit and where it came from (older runs recorded only the value)."""
    recorded = data.get("max_length")
    if isinstance(recorded, dict):
        return recorded
    value = config.get("max_length") or evaluation.get("max_length")
    return {"value": value, "source": "set in the run's configuration"}


def recorded_evaluation(run: RunFolder, recorded: dict) -> dict:
    """An evaluation built from metrics.json's test metrics, for a run not evaluated (yet): no slices, errors,
    calibration or plots."""
    test = recorded.get("test")
    if not test:
        raise SentituneError(f"{run.path}: no evaluation.json and no test metrics in metrics.json, so nothing to "
                             f"report; evaluate the run first (sentitune evaluate {run.path}).")
    return {"split": "test", "n": test.get("n"), "labels": run.labels().to_dict(), "metrics": test, "errors": {},
            "slices": {}, "plots": {}, "examples": (recorded.get("examples") or {}).get("test") or {}}


def evaluation_of(run: RunFolder, recorded: dict) -> tuple[dict, bool]:
    """(evaluation, recorded_only): evaluation.json as `sentitune evaluate` wrote it, else the recorded test
    metrics. Never evaluates: that loads the model and writes files, which callers do first when they need it."""
    evaluation = run.evaluation()
    return (evaluation, False) if evaluation else (recorded_evaluation(run, recorded), True)


def scored_split(examples: dict, data: dict, n) -> dict:
    """{split, whole, n, of, seed}: which test examples the metrics are on. `split` is the test split's name when
    the whole split was scored, else a name that says the sample (`test[sample: 2000, seed 42]`) or the share of
    training data held out as test (`train[20% held out, seed 42]`)."""
    n, seed = examples.get("size") or n, examples.get("seed")
    carved = data.get("test_carved_from_train")
    of = (data.get("raw_rows") or {}).get("test")
    sampled = bool(examples.get("per_class")) or (of is not None and n is not None and n < of)
    if carved:
        split = f"train[{100 * carved:g}% held out{f': sample of {n}' if sampled else ''}, seed {seed}]"
    else:
        split = f"test[sample: {n}, seed {seed}]" if sampled else "test"
    return {"split": split, "whole": not carved and not sampled, "n": n, "of": of, "seed": seed,
            "per_class": examples.get("per_class"), "carved": carved}


def model_details(run: RunFolder, recorded: dict) -> dict:
    """The saved model's architecture from its config.json: {architecture, model_type, layers, hidden_size,
    heads, max_positions, vocab_size, parameters}, as far as known. Parameters are counted from the safetensors
    headers (no weights are read), else taken from a distillation's record."""
    config = read_json(run.model_dir / "config.json")
    details = {"architecture": (config.get("architectures") or [None])[0], "model_type": config.get("model_type"),
               "layers": config.get("num_hidden_layers"), "hidden_size": config.get("hidden_size"),
               "heads": config.get("num_attention_heads"), "max_positions": config.get("max_position_embeddings"),
               "vocab_size": config.get("vocab_size")}
    student = ((recorded.get("distillation") or {}).get("student") or {}).get("parameters")
    details["parameters"] = safetensors_parameters(run.model_dir) or student
    return {k: v for k, v in details.items() if v is not None}


def safetensors_parameters(model_dir: Path) -> int | None:
    """How many parameters the model's .safetensors files hold, read from their JSON headers alone."""
    total = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        total += sum(int(np.prod(t["shape"])) for name, t in header.items() if name != "__metadata__")
    return total or None


def read_study(study_dir: str | Path | None) -> dict | None:
    """A hyperparameter study folder as {dir, best (from best.yaml), plots [paths]}; None when absent."""
    if study_dir is None:
        return None
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise SentituneError(f"--study {study_dir}: folder not found; pass the folder the search wrote "
                             "(with best.yaml).")
    best_file = study_dir / "best.yaml"
    best = (yaml.safe_load(best_file.read_text()) or {}) if best_file.is_file() else {}
    return {"dir": str(study_dir), "best": best, "plots": sorted((study_dir / "plots").glob("*.png"))}


def study_of(run: RunFolder, study_dir: str | Path | None) -> dict | None:
    inside = run.path / STUDY
    return read_study(study_dir or (inside if inside.is_dir() else None))


def evaluation_plot(facts: dict, key: str) -> Path | None:
    """One of the evaluation's plots, if it was made and is still there."""
    made = (facts["evaluation"].get("plots") or {}).get(key)
    path = facts["run_dir"] / made if made else None
    return path if path is not None and path.is_file() else None


def selection_column(train: dict, log: list[dict]) -> str | None:
    """The logged validation metric that picked the checkpoint (eval_f1, eval_f1_macro or eval_accuracy in logs
    that predate `selection_metric`)."""
    metric = train.get("selection_metric")
    candidates = ([f"eval_{metric}"] if metric else []) + ["eval_f1", "eval_f1_macro", "eval_accuracy"]
    return next((c for c in candidates if any(r.get(c) is not None for r in log)), None)


def selection_peak(train: dict, log: list[dict], labels: LabelScheme) -> dict | None:
    """{metric, step, value, last_step, last_eval} of the validation selection metric's best evaluation."""
    column = selection_column(train, log)
    evals = [r for r in log if r.get(column) is not None and "step" in r] if column else []
    if not evals:
        return None
    best = max(evals, key=lambda r: r[column])
    last = train.get("steps") or max(r.get("step", 0) for r in log)
    return {"metric": metric_label(column.removeprefix("eval_"), labels), "step": best["step"],
            "value": best[column], "last_step": last, "last_eval": max(r["step"] for r in evals)}


def truncation(evaluation: dict) -> dict | None:
    """{share, cut, kept} of the evaluated texts longer than max_length, from the truncation slice."""
    rows = (evaluation.get("slices") or {}).get("truncation") or []
    if len(rows) != 2:
        return None
    kept, cut = rows
    return {"share": cut["n"] / max(cut["n"] + kept["n"], 1), "cut": cut, "kept": kept,
            "max_length": evaluation.get("max_length")}


def confident_errors(evaluation: dict) -> list[dict]:
    """The most confident errors over every true class, most confident first."""
    confident = (evaluation.get("errors") or {}).get("confident") or {}
    rows = [r for rows in confident.values() for r in rows if r.get("text") is not None]
    return sorted(rows, key=lambda r: -float(r.get("confidence") or 0))


def explained_errors(evaluation: dict) -> list[dict]:
    """The confident errors that `sentitune evaluate` explained (`words`: [{word, start, end, score}] on the error
    rows), most confident first."""
    return [e for e in confident_errors(evaluation) if isinstance(e.get("words"), list)
            and any(isinstance(w, dict) and isinstance(w.get("score"), (int, float)) for w in e["words"])]


# ---------------------------------------------------------------- comparison


def comparison_entry(row: dict, is_model: bool) -> dict:
    """A row of `sentitune compare`'s table in the renderers' shape, the row itself under `row`."""
    metrics = {k: row[k] for k in ("n", *COMPARISON_KEYS) if row.get(k) is not None}
    metrics |= {f"{k}_ci95": row[f"{k}_ci95"] for k in COMPARISON_KEYS if row.get(f"{k}_ci95")}
    return {"name": row["name"], "kind": row.get("kind"), "is_model": is_model, "metrics": metrics,
            "examples": row.get("examples") or {}, "examples_per_s": row.get("examples_per_s"),
            "mcnemar": row.get("mcnemar_vs_best_baseline"), "bootstrap": row.get("bootstrap_f1_macro_vs_best_baseline"),
            "row": row}


def ranked(entries, primary: str) -> list[dict]:
    """Entries best first by `primary` (those without it last)."""
    lower = METRICS[primary].lower_is_better if primary in METRICS else False

    def key(entry):
        value = entry["metrics"].get(primary)
        return (value is None, 0 if value is None else value if lower else -value)

    return sorted(entries, key=key)


def comparison_rows(table: dict, model: dict, names: set[str], primary: str) -> list[dict]:
    """The run first, then the other systems best first by `primary`, each flagged `comparable` (scored on the same
    examples as the run). The run's row is the table's own when it has one (its values are those the paired tests
    compared), else `model` (the run's evaluation)."""
    rows = table.get("rows") or []
    if not rows:
        return []
    own = next((r for r in rows if r.get("name") in names and r.get("kind", FINE_TUNED) == FINE_TUNED), None)
    if own is not None:
        model = comparison_entry(own, True)
    others = ranked([comparison_entry(r, False) for r in rows if r is not own], primary)
    fingerprint = model["examples"].get("fingerprint")
    same = lambda e: fingerprint is not None and e["examples"].get("fingerprint") == fingerprint  # noqa: E731
    return [{**e, "comparable": e is model or same(e)} for e in [model, *others]]


def comparison_columns(rows: list[dict], labels: LabelScheme) -> list[dict]:
    """The metric columns of the comparison table: those a system besides the run has too (an older table's
    baselines lack the macro metrics the run's own evaluation has)."""
    others = rows[1:] or rows
    return [{"key": k, "label": metric_label(k, labels)} for k in COMPARISON_KEYS
            if any(r["metrics"].get(k) is not None for r in others)]


def comparison_source(run: RunFolder, comparison) -> tuple[dict, Path | None]:
    """The comparison table and its chart: the run's own (default) or the one given (path or loaded dict)."""
    if comparison is None:
        return run.comparison(), run.comparison_chart()
    table = read_comparison(comparison)
    inside = not isinstance(comparison, dict) and Path(comparison).resolve().is_relative_to(run.path.resolve())
    return table, run.comparison_chart() if inside else None


def baseline_gap(rows: list[dict], primary: str, best_name: str | None, labels: LabelScheme) -> dict | None:
    """{model, best, label, skipped}: the run's row, the best baseline scored on the same examples with the primary
    metric (the table's best when it qualifies, else the best by `primary`; None when there is none), the primary
    metric's name and the systems scored on other examples. None without a comparison."""
    if not rows:
        return None
    same = [r for r in rows[1:] if r["comparable"] and r["metrics"].get(primary) is not None]
    best = (next((r for r in same if r["name"] == best_name), None) or ranked(same, primary)[0]) if same else None
    return {"model": rows[0], "best": best, "label": metric_label(primary, labels),
            "skipped": [r["name"] for r in rows[1:] if not r["comparable"]]}


# ---------------------------------------------------------------- everything


def metric_facts(evaluation: dict, recorded: dict, labels: LabelScheme, dataset: Dataset) -> dict:
    """The official and primary metrics, the headline rows and the full results table."""
    metrics = evaluation["metrics"]
    official = dataset.official if dataset.official in metrics else None
    columns = result_columns(evaluation, recorded, recorded.get("data") or {})
    return {"official": official, "primary": primary_metric(labels, official),
            "headline": headline(metrics, labels, official, dataset),
            "results": results_table(columns, metrics, labels, official)}


def class_facts(metrics: dict, labels: LabelScheme, data: dict) -> dict:
    """Confusion matrix, per-class rows with train/test shares, the weakest class and the commonest confusion."""
    shares = class_shares(data, labels)
    return {"confusion": confusion(metrics, labels), "class_shares": shares, "shares_differ": shares_differ(shares),
            "per_class": class_rows(metrics, shares), "weakest_class": weakest_class(metrics),
            "most_confused": most_confused(metrics, labels)}


def comparison_facts(run: RunFolder, comparison, model: dict, primary: str, labels: LabelScheme) -> dict:
    """The comparison rows (the run first), their metric columns, the raw table, its chart and the baseline gap."""
    table, chart = comparison_source(run, comparison)
    rows = comparison_rows(table, model, {model["name"], run.name}, primary)
    return {"comparison": rows, "comparison_columns": comparison_columns(rows, labels), "comparison_table": table,
            "comparison_chart": chart, "best_baseline": table.get("best_baseline"),
            "baseline": baseline_gap(rows, primary, table.get("best_baseline"), labels)}


def batch_sweep_fact(sweeps: dict) -> dict:
    """{sweeps, sentence}: the batch sizes `--batch-size auto` measured and chose, in one sentence ({} without)."""
    if not sweeps:
        return {}
    parts = []
    for kind, sweep in sweeps.items():
        rates = ", ".join(f"{r['batch_size']}: {r['examples_per_s']:.1f}" for r in sweep["rows"] if r["fits"])
        size = (f"{sweep['chosen']} x {sweep['accumulation']} accumulated" if kind == "train"
                else str(sweep["chosen"]))
        parts.append(f"{'training' if kind == 'train' else 'prediction'} batch {size}, the fastest of the sizes "
                     f"measured on this machine (examples/s {rates}; {sweep['seconds']:.0f} s)")
    return {"sweeps": sweeps, "sentence": "; ".join(parts) + "."}


def run_facts(run_dir: str | Path | RunFolder, comparison=None, study_dir: str | Path | None = None) -> dict:
    """Everything the report, the deck and the model card show about a run, read through its RunFolder.

    `comparison`: a comparison.json path or folder, or a loaded table (default: the run's own, when it has one).
    `study_dir`: a hyperparameter study folder with best.yaml and plots/ (default: RUN/study when present).
    The evaluation is evaluation.json, else the test metrics recorded at the end of training (`recorded_only`)."""
    run = (run_dir if isinstance(run_dir, RunFolder) else RunFolder(Path(run_dir))).require()
    cfg, recorded, labels = run.config(), run.metrics(), run.labels()
    data, train = recorded.get("data") or {}, recorded.get("train") or {}
    evaluation, recorded_only = evaluation_of(run, recorded)
    evaluation = {**evaluation, "metrics": with_class_metrics(evaluation["metrics"], labels)}
    source, config = cfg.data.data or data.get("source"), cfg.to_dict()
    dataset = dataset_of(source)
    examples = (recorded.get("examples") or {}).get("test") or evaluation.get("examples") or {}
    log = run.log()
    facts = {"run": run, "run_dir": run.path, "name": cfg.name or run.name, "config": config, "labels": labels,
             "dataset": dataset, "source": source, "unit": dataset.unit, "model_id": model_id(cfg.model),
             "metrics": recorded, "evaluation": evaluation, "recorded_only": recorded_only,
             "m": evaluation["metrics"], "train": train, "data": data, "log": log, "examples": examples,
             "scored": scored_split(examples, data, evaluation.get("n")),
             "max_length": max_length_fact(data, config, evaluation), "model_details": model_details(run, recorded),
             "hardware": hardware_text(train.get("hardware")), "study": study_of(run, study_dir),
             "budget": run.budget().get("sentence"), "batch_sweep": batch_sweep_fact(run.batch_sweep()),
             "selection_peak": selection_peak(train, log, labels),
             "truncation": truncation(evaluation), "weakest_slices": weakest_slices(evaluation.get("slices") or {}),
             **metric_facts(evaluation, recorded, labels, dataset), **class_facts(evaluation["metrics"], labels, data)}
    model = {"name": facts["name"], "kind": FINE_TUNED, "is_model": True, "metrics": facts["m"],
             "examples": facts["examples"], "examples_per_s": None, "mcnemar": None, "bootstrap": None, "row": {}}
    facts |= comparison_facts(run, comparison, model, facts["primary"], labels)
    return facts | {"lessons": lessons(facts)}
