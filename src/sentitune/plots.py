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

DPI = 110
NEG_COLOR, POS_COLOR, MODEL_COLOR, BASE_COLOR = "#c0392b", "#2471a3", "#2471a3", "#95a5a6"


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


def training_plots(log: list[dict], out_dir: Path) -> dict[str, Path]:
    """loss.png (train and validation), f1.png (validation F1 and accuracy) and learning_rate.png from log.jsonl."""
    frame = log_frame(log)
    if frame.empty:
        return {}
    out_dir = Path(out_dir)
    made = {
        "loss": plot_curves(frame, {"loss": "training loss", "eval_loss": "validation loss"}, "Loss over training", "cross-entropy", out_dir / "loss.png"),
        "f1": plot_curves(frame, {"eval_f1": "validation F1", "eval_accuracy": "validation accuracy"}, "Validation F1 and accuracy", "score", out_dir / "f1.png"),
        "learning_rate": plot_curves(frame, {"learning_rate": "learning rate"}, "Learning-rate schedule", "learning rate", out_dir / "learning_rate.png"),
    }
    return {name: path for name, path in made.items() if path is not None}


# ---------------------------------------------------------------- evaluation figures


def plot_confusion_matrix(matrix: list[list[int]], path: Path, title: str = "Confusion matrix") -> Path:
    """2x2 confusion matrix with counts and row percentages."""
    cm = np.asarray(matrix)
    fig = Figure(figsize=(4.6, 4))
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    row_totals = cm.sum(axis=1, keepdims=True).clip(min=1)
    for (i, j), count in np.ndenumerate(cm):
        dark = count > cm.max() / 2
        ax.text(j, i, f"{count}\n({100 * count / row_totals[i, 0]:.1f}%)", ha="center", va="center", color="white" if dark else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["negative", "positive"], yticklabels=["negative", "positive"],
           xlabel="predicted", ylabel="true", title=f"{title} (n={cm.sum()})")
    return save(fig, path)


def plot_roc_pr(labels: np.ndarray, prob: np.ndarray, path: Path) -> Path:
    """ROC and precision-recall curves side by side, with their areas."""
    fig = Figure(figsize=(9, 4))
    roc_ax, pr_ax = fig.subplots(1, 2)
    fpr, tpr, _ = skm.roc_curve(labels, prob)
    roc_ax.plot(fpr, tpr, color=MODEL_COLOR, label=f"model (AUC {skm.roc_auc_score(labels, prob):.3f})")
    roc_ax.plot([0, 1], [0, 1], "--", color=BASE_COLOR, label="chance")
    roc_ax.set(title="ROC curve", xlabel="false positive rate", ylabel="true positive rate")
    precision, recall, _ = skm.precision_recall_curve(labels, prob)
    pr_ax.plot(recall, precision, color=MODEL_COLOR, label=f"model (AP {skm.average_precision_score(labels, prob):.3f})")
    pr_ax.axhline(np.mean(labels), linestyle="--", color=BASE_COLOR, label="positive rate")
    pr_ax.set(title="Precision-recall curve", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if ax is roc_ax else "lower left")
    return save(fig, path)


def plot_reliability(bins: list[dict], path: Path, bins_after: list[dict] | None = None, ece: tuple[float, float | None] | None = None) -> Path:
    """Reliability diagram: accuracy against confidence per bin (and after temperature scaling when given)."""
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "--", color=BASE_COLOR, label="perfect calibration")
    for series, label, color in ((bins, "model", MODEL_COLOR), (bins_after, "after temperature scaling", "#e67e22")):
        filled = [b for b in series or [] if b["count"]]
        if filled:
            ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o", color=color, label=label)
    title = "Reliability diagram"
    if ece:
        title += f"\nECE {ece[0]:.3f}" + (f" -> {ece[1]:.3f} after scaling" if ece[1] is not None else "")
    ax.set(title=title, xlabel="confidence in predicted class", ylabel="accuracy", xlim=(0.45, 1.01), ylim=(0, 1.02))
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
    ax.set(xticks=x, title=title, xlabel=xlabel, ylabel="accuracy", ylim=(0, 1.05))
    ax.set_xticklabels([f"{r['group']}\nn={r['n']}" for r in rows], fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def plot_baseline_comparison(entries: list[dict], path: Path, metric: str = "accuracy") -> Path | None:
    """Horizontal bars of one metric for the model and its baselines, with 95% intervals when known."""
    rows = [e for e in entries if e["metrics"].get(metric) is not None]
    if not rows:
        return None
    rows = sorted(rows, key=lambda e: e["metrics"][metric])
    fig = Figure(figsize=(6.4, 0.5 * len(rows) + 1.6))
    ax = fig.add_subplot()
    values = np.array([e["metrics"][metric] for e in rows])
    ci = [e["metrics"].get(f"{metric}_ci95") for e in rows]
    err = np.array([[v - c[0], c[1] - v] if c else [0, 0] for v, c in zip(values, ci)]).T.clip(min=0)
    colors = [MODEL_COLOR if e.get("is_model") else BASE_COLOR for e in rows]
    ax.barh(np.arange(len(rows)), values, xerr=err, capsize=3, color=colors)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3f}", va="center", ha="left", fontsize=8)
    ax.set(yticks=np.arange(len(rows)), title=f"Test {metric}: model vs baselines", xlabel=metric, xlim=(0, 1.1))
    ax.set_yticklabels([e["name"] for e in rows])
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


SLICE_TITLES = {
    "length": ("Accuracy by review length", "tokens before truncation"),
    "rating": ("Accuracy by true star rating", "stars (1-4 negative, 7-10 positive)"),
    "truncation": ("Accuracy by truncation", "review cut to the token limit?"),
    "negation": ("Accuracy by negation words", "review contains not / never / n't ..."),
}


def evaluation_plots(frame: pd.DataFrame, evaluation: dict, out_dir: Path) -> dict[str, Path]:
    """Confusion matrix, ROC/PR, reliability and one accuracy-by-slice chart per slice; {name: path}."""
    out_dir = Path(out_dir)
    labels, prob = frame["label"].to_numpy(int), frame["prob"].to_numpy(float)
    metrics, temperature = evaluation["metrics"], evaluation.get("temperature")
    split = evaluation.get("split", "test")
    made = {"confusion_matrix": plot_confusion_matrix(metrics["confusion_matrix"], out_dir / "confusion_matrix.png", f"Confusion matrix, {split}")}
    if len(np.unique(labels)) == 2:
        made["roc_pr"] = plot_roc_pr(labels, prob, out_dir / "roc_pr.png")
    ece_after = temperature["metrics_after"]["ece"] if temperature else None
    made["reliability"] = plot_reliability(evaluation["calibration_bins"], out_dir / "reliability.png",
                                           temperature["bins_after"] if temperature else None, (metrics["ece"], ece_after))
    for name, rows in evaluation["slices"].items():
        title, xlabel = SLICE_TITLES[name]
        made[f"accuracy_by_{name}"] = plot_slice_accuracy(rows, f"{title} ({split})", xlabel, out_dir / f"accuracy_by_{name}.png", metrics["accuracy"])
    return made
