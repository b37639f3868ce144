"""PNG figures of a run, each readable on its own: titled, labelled axes, sizes noted.

Figures are built with `matplotlib.figure.Figure` (no pyplot), so no global state or GUI backend is
touched and plotting is safe inside a server or a test run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn import metrics as skm

from ..core.labels import LabelScheme
from ..run.folder import probabilities

DPI = 110
MODEL_COLOR, BASE_COLOR, AFTER_COLOR = "#2471a3", "#95a5a6", "#e67e22"
SCORE_COLORS = {"precision": "#2471a3", "recall": "#27ae60", "f1": "#c0392b"}
LENGTH_LIMITS = (256, 512)


def plain(text) -> str:
    """Text drawn verbatim: matplotlib would read `$...$` in a class name, group or title as math."""
    return str(text).replace("$", r"\$")


def save(fig: Figure, path: Path) -> Path:
    """Save a figure as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


# ---------------------------------------------------------------- training curves


def log_frame(log: list[dict]) -> pd.DataFrame:
    """Trainer log events as a frame indexed by step (empty when there are none)."""
    frame = pd.DataFrame([r for r in log if "step" in r])
    return frame.sort_values("step") if not frame.empty else frame


def plot_curves(frame: pd.DataFrame, columns: dict[str, str], title: str, ylabel: str, path: Path) -> Path | None:
    """One line per present column ({column: legend label}) against the step; None when no column has data."""
    present = {c: label for c, label in columns.items() if c in frame and frame[c].notna().any()}
    if not present:
        return None
    fig = Figure(figsize=(6.4, 4))
    ax = fig.add_subplot()
    for column, label in present.items():
        points = frame[["step", column]].dropna()
        ax.plot(points["step"], points[column], marker="o" if len(points) < 30 else None, markersize=3, label=label)
    ax.set(title=title, xlabel="optimizer step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


SELECTION_CURVES = (("eval_f1", "F1"), ("eval_f1_macro", "macro F1"))


def selection_curve(frame: pd.DataFrame) -> tuple[str, str]:
    """The logged checkpoint-selection metric: eval_f1 in binary runs, else eval_f1_macro; (column, name)."""
    present = [(c, name) for c, name in SELECTION_CURVES if c in frame and frame[c].notna().any()]
    return (present or SELECTION_CURVES)[0]


def training_plots(log: list[dict], out_dir: Path) -> dict[str, Path]:
    """loss.png (training and validation), f1.png (the selection metric and accuracy on validation) and
    learning_rate.png from the training log; {name: path}."""
    frame = log_frame(log)
    if frame.empty:
        return {}
    out_dir = Path(out_dir)
    column, metric = selection_curve(frame)
    made = {
        "loss": plot_curves(frame, {"loss": "training loss", "eval_loss": "validation loss"}, "Loss over training",
                            "cross-entropy", out_dir / "loss.png"),
        "f1": plot_curves(frame, {column: f"validation {metric}", "eval_accuracy": "validation accuracy"},
                          f"Validation {metric} and accuracy", "score", out_dir / "f1.png"),
        "learning_rate": plot_curves(frame, {"learning_rate": "learning rate"}, "Learning-rate schedule",
                                     "learning rate", out_dir / "learning_rate.png"),
    }
    return {name: path for name, path in made.items() if path is not None}


# ---------------------------------------------------------------- evaluation figures


def plot_confusion_matrix(matrix: list[list[int]], names, path: Path, title: str = "Confusion matrix") -> Path:
    """N x N confusion heat map, rows true and columns predicted: counts and row percentages, shaded by the row
    share (so a small class's errors show as clearly as a large one's), class names on both axes."""
    cm = np.asarray(matrix, int)
    k = len(cm)
    shares = cm / cm.sum(axis=1, keepdims=True).clip(min=1)
    fig = Figure(figsize=(max(4.6, 1.1 * k + 2.4), max(4.0, 1.0 * k + 1.8)))
    ax = fig.add_subplot()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{count}\n({100 * shares[i, j]:.1f}%)", ha="center", va="center", fontsize=9 if k < 5 else 8,
                color="white" if shares[i, j] > 0.5 else "black")
    ticks = np.arange(k)
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true", title=f"{plain(title)} (n={cm.sum()})")
    ax.set_xticklabels([plain(n) for n in names], rotation=30 if k > 3 else 0, ha="right" if k > 3 else "center")
    ax.set_yticklabels([plain(n) for n in names])
    return save(fig, path)


def plot_roc_pr(labels: np.ndarray, prob: np.ndarray, path: Path, positive: str = "positive") -> Path:
    """ROC and precision-recall curves of P(`positive`) side by side, with their areas (binary tasks)."""
    fig = Figure(figsize=(9, 4))
    roc_ax, pr_ax = fig.subplots(1, 2)
    fpr, tpr, _ = skm.roc_curve(labels, prob)
    roc_ax.plot(fpr, tpr, color=MODEL_COLOR, label=f"model (AUC {skm.roc_auc_score(labels, prob):.3f})")
    roc_ax.plot([0, 1], [0, 1], "--", color=BASE_COLOR, label="chance")
    roc_ax.set(title="ROC curve", xlabel="false positive rate", ylabel="true positive rate")
    precision, recall, _ = skm.precision_recall_curve(labels, prob)
    average_precision = skm.average_precision_score(labels, prob)
    pr_ax.plot(recall, precision, color=MODEL_COLOR, label=f"model (AP {average_precision:.3f})")
    pr_ax.axhline(np.mean(labels), linestyle="--", color=BASE_COLOR, label=f"share of {plain(positive)}")
    pr_ax.set(title="Precision-recall curve", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if ax is roc_ax else "lower left")
    return save(fig, path)


def plot_reliability(bins: list[dict], path: Path, bins_after: list[dict] | None = None,
                     ece: tuple[float, float | None] | None = None, n_classes: int = 2) -> Path:
    """Top-label reliability diagram: accuracy against confidence in the predicted class per bin, before and (when
    given) after temperature scaling. Confidence starts at 1/K, so the axis does too."""
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "--", color=BASE_COLOR, label="perfect calibration")
    for series, label, color in ((bins, "model", MODEL_COLOR), (bins_after, "after temperature scaling", AFTER_COLOR)):
        filled = [b for b in series or [] if b["count"]]
        if filled:
            ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o", color=color,
                    label=label)
    title = "Reliability diagram"
    if ece:
        title += f"\nECE {ece[0]:.3f}" + (f" -> {ece[1]:.3f} after scaling" if ece[1] is not None else "")
    ax.set(title=title, xlabel="confidence in predicted class", ylabel="accuracy", xlim=(1 / n_classes - 0.05, 1.01),
           ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return save(fig, path)


def plot_slice_accuracy(rows: list[dict], title: str, xlabel: str, path: Path, overall: float | None = None) -> Path:
    """Bar chart of accuracy per group with 95% intervals and group sizes."""
    fig = Figure(figsize=(max(5.0, 0.75 * len(rows) + 2), 4))
    ax = fig.add_subplot()
    acc = np.array([r["accuracy"] for r in rows])
    # clipped: float rounding puts the Wilson bound a hair inside 1.0 when a group is all correct
    lo = (acc - np.array([r["accuracy_ci95"][0] for r in rows])).clip(min=0)
    hi = (np.array([r["accuracy_ci95"][1] for r in rows]) - acc).clip(min=0)
    x = np.arange(len(rows))
    ax.bar(x, acc, yerr=[lo, hi], capsize=4, color=MODEL_COLOR, alpha=0.85)
    if overall is not None:
        ax.axhline(overall, linestyle="--", color="black", linewidth=1, label=f"overall {overall:.3f}")
        ax.legend(loc="lower right")
    ax.set(xticks=x, title=plain(title), xlabel=xlabel, ylabel="accuracy", ylim=(0, 1.05))
    ax.set_xticklabels([f"{plain(r['group'])}\nn={r['n']}" for r in rows], fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def plot_per_class(rows: list[dict], path: Path, title: str = "Precision, recall and F1 per class") -> Path:
    """Grouped bars of precision, recall and F1 for each class, with its support under its name."""
    fig = Figure(figsize=(max(5.5, 1.3 * len(rows) + 2.5), 4))
    ax = fig.add_subplot()
    x, width = np.arange(len(rows)), 0.8 / len(SCORE_COLORS)
    for i, (key, color) in enumerate(SCORE_COLORS.items()):
        ax.bar(x + (i - 1) * width, [r[key] for r in rows], width, color=color, label="F1" if key == "f1" else key)
    ax.set(xticks=x, title=plain(title), ylabel="score", ylim=(0, 1.05))
    ax.set_xticklabels([f"{plain(r['label'])}\nn={r['support']}" for r in rows], fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    return save(fig, path)


def plot_class_shares(shares: dict[str, dict[str, float]], path: Path) -> Path:
    """Each class's share of the examples per split ({split: {class: share}}), side by side: a shift in class
    balance between train and test shows at a glance."""
    names = list(dict.fromkeys(name for split in shares.values() for name in split))
    fig = Figure(figsize=(max(5.0, 1.2 * len(names) + 2), 4))
    ax = fig.add_subplot()
    x, width = np.arange(len(names)), 0.8 / max(len(shares), 1)
    for i, (split, values) in enumerate(shares.items()):
        heights = [values.get(name, 0.0) for name in names]
        bars = ax.bar(x + (i - (len(shares) - 1) / 2) * width, heights, width, label=plain(split))
        ax.bar_label(bars, labels=[f"{100 * h:.0f}%" for h in heights], fontsize=8)
    top = max((v for values in shares.values() for v in values.values()), default=1.0)
    ax.set(xticks=x, title="Class shares by split", ylabel="share of examples", ylim=(0, min(1.0, top + 0.1)))
    ax.set_xticklabels([plain(name) for name in names])
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return save(fig, path)


def plot_lengths(stats: dict, path: Path) -> Path:
    """Histogram of token lengths per split (`data.stats.dataset_stats`), clipped at 2000, with the 256 and 512
    limits marked."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for split, summary in stats["tokens"].items():
        ax.hist(np.minimum(summary["lengths"], 2000), bins=80, alpha=0.5,
                label=f"{plain(split)} (median {summary['p50']:.0f})")
    for limit in LENGTH_LIMITS:
        ax.axvline(limit, color="black", linestyle="--", linewidth=1)
        ax.text(limit, ax.get_ylim()[1] * 0.95, f" {limit}", va="top")
    tokenizer = Path(stats["tokenizer"])
    short = tokenizer.parent.name if tokenizer.name == "model" else tokenizer.name  # packaged: .../<package>/model
    ax.set(xlabel="tokens per text (clipped at 2000)", ylabel="texts",
           title=f"Token lengths ({plain(short)} tokenizer)")
    ax.legend()
    return save(fig, path)


SLICE_TITLES = {
    "class": ("Accuracy by true class (its recall)", "true class"),
    "length": ("Accuracy by text length", "tokens before truncation"),
    "rating": ("Accuracy by true star rating", "rating"),
    "truncation": ("Accuracy by truncation", "text cut to the token limit?"),
    "negation": ("Accuracy by negation words", "text contains not / never / n't ..."),
}


def slice_plots(slices: dict[str, list[dict]], out_dir: Path, split: str, overall: float) -> dict[str, Path]:
    """One accuracy-by-group chart per slice: {accuracy_by_<slice>: path}."""
    made = {}
    for name, rows in slices.items():
        title, xlabel = SLICE_TITLES.get(name, (f"Accuracy by {name}", name))
        made[f"accuracy_by_{name}"] = plot_slice_accuracy(rows, f"{title} ({split})", xlabel,
                                                          Path(out_dir) / f"accuracy_by_{name}.png", overall)
    return made


def reliability_plot(evaluation: dict, path: Path, n_classes: int) -> Path:
    """The evaluation's reliability diagram, before and after its temperature (when one was fitted)."""
    t, ece = evaluation.get("temperature"), evaluation["metrics"]["ece"]
    return plot_reliability(evaluation["calibration_bins"], path, t["bins_after"] if t else None,
                            (ece, t["metrics_after"]["ece"] if t else None), n_classes)


def evaluation_plots(frame: pd.DataFrame, evaluation: dict, out_dir: Path, labels: LabelScheme) -> dict[str, Path]:
    """Confusion heat map, per-class bars, reliability diagram, ROC/PR (binary only) and one accuracy chart per
    slice of an evaluated predictions table; {name: path}."""
    out_dir = Path(out_dir)
    metrics, split = evaluation["metrics"], evaluation.get("split", "test")
    made = {"confusion_matrix": plot_confusion_matrix(metrics["confusion_matrix"], labels.names,
                                                      out_dir / "confusion_matrix.png", f"Confusion matrix, {split}"),
            "per_class": plot_per_class(metrics["per_class"], out_dir / "per_class.png",
                                        f"Precision, recall and F1 per class, {split}"),
            "reliability": reliability_plot(evaluation, out_dir / "reliability.png", labels.n)}
    y = frame["label"].to_numpy(int)
    if labels.binary and len(np.unique(y)) == 2:
        made["roc_pr"] = plot_roc_pr(y, probabilities(frame)[:, 1], out_dir / "roc_pr.png", labels.names[1])
    return made | slice_plots(evaluation["slices"], out_dir, split, metrics["accuracy"])


# ---------------------------------------------------------------- comparison with baselines

COMPARED = (("accuracy", "accuracy", "accuracy_ci95"), ("f1_macro", "macro-F1", "f1_macro_ci95"),
            ("roc_auc", "ROC-AUC", None))


def plot_comparison(table: dict, path: Path) -> Path:
    """comparison.png of a `compare` table: accuracy (95% CI), macro-F1 (95% CI) and, for two classes, ROC-AUC per
    entry, in the table's order (best first), so the fine-tuned run and its baselines read side by side."""
    rows = table["rows"]
    shown = [c for c in COMPARED if any(r.get(c[0]) is not None for r in rows)]
    x, width = np.arange(len(rows)), 0.8 / len(shown)
    fig = Figure(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.5))
    ax = fig.add_subplot()
    for i, (key, label, ci) in enumerate(shown):
        values = np.array([r[key] if r.get(key) is not None else np.nan for r in rows], dtype=float)
        intervals = [r.get(ci) if ci else None for r in rows]
        errors = np.array([[v - c[0], c[1] - v] if c else [0.0, 0.0] for v, c in zip(values, intervals)]).T.clip(min=0)
        offset = (i - (len(shown) - 1) / 2) * width
        ax.bar(x + offset, values, width, yerr=errors if ci else None, capsize=3, label=label)
    low = np.nanmin([r.get(key) if r.get(key) is not None else np.nan for r in rows for key, _, _ in shown])
    ax.set_ylim(max(0.0, np.floor(low * 20) / 20 - 0.05), 1.0)
    ax.set_xticks(x)
    ax.set_xticklabels([plain(r["name"]) for r in rows], rotation=30, ha="right")
    examples = table.get("examples") or {}
    title = f"Test set: {examples.get('split')}, {examples.get('size')} examples" if table.get("same_examples") \
        else "Test sets differ per entry"
    ax.set(ylabel="test score", title=title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def plot_batch_sweep(sweeps: dict, path: Path) -> Path:
    """batch_sweep.png: examples/s against batch size for each sweep `--batch-size auto` measured (training,
    prediction), the chosen size marked, sizes that did not fit shown as crosses at zero."""
    fig = Figure(figsize=(6.5, 4.0))
    ax = fig.add_subplot()
    for kind, sweep in sweeps.items():
        fits = [r for r in sweep["rows"] if r["fits"]]
        line, = ax.plot([r["batch_size"] for r in fits], [r["examples_per_s"] for r in fits], marker="o",
                        label=f"{'training' if kind == 'train' else 'prediction'} (chose {sweep['chosen']})")
        chosen = next(r for r in fits if r["batch_size"] == sweep["chosen"])
        ax.scatter([chosen["batch_size"]], [chosen["examples_per_s"]], s=160, facecolors="none",
                   edgecolors=line.get_color(), linewidths=2)
        failed = [r["batch_size"] for r in sweep["rows"] if not r["fits"]]
        ax.scatter(failed, [0] * len(failed), marker="x", color=line.get_color())
    ax.set_xscale("log", base=2)
    ax.set(xlabel="batch size (micro-batch for training)", ylabel="examples/s", title="Batch sizes measured here")
    ax.legend()
    ax.grid(alpha=0.3)
    return save(fig, path)

