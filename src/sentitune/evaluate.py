"""Evaluation stage: metrics, calibration, significance tests, slices and error analysis of a run.

`classification_metrics` and `mcnemar` are the shared building blocks (see docs/CONTRACTS.md);
`evaluate_run` scores a whole run folder and writes `evaluation.json` and `plots/*.png`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import optimize, stats
from sklearn import metrics as skm

from .errors import SentituneError
from .io import atomic_write_text
from .predict import sigmoid

ECE_BINS = 15
Z95 = 1.959963984540054


# ---------------------------------------------------------------- metrics


def wilson_interval(successes: int, n: int, z: float = Z95) -> list[float]:
    """Wilson score interval for a binomial proportion (well behaved near 0 and 1, unlike the normal one)."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def calibration_bins(labels: np.ndarray, prob_pos: np.ndarray, threshold: float = 0.5, n_bins: int = ECE_BINS) -> list[dict]:
    """Equal-width bins over the confidence in the predicted class: [{lo, hi, count, confidence, accuracy}]."""
    pred = (prob_pos >= threshold).astype(int)
    confidence = np.where(pred == 1, prob_pos, 1.0 - prob_pos)
    correct = (pred == labels).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins so that a confidence of exactly 1.0 lands in the last bin
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        bins.append({
            "lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count,
            "confidence": float(confidence[mask].mean()) if count else None,
            "accuracy": float(correct[mask].mean()) if count else None,
        })
    return bins


def expected_calibration_error(labels: np.ndarray, prob_pos: np.ndarray, threshold: float = 0.5, n_bins: int = ECE_BINS) -> float:
    """ECE: count-weighted mean |accuracy - confidence| over equal-width confidence bins (Guo et al., 2017)."""
    bins = calibration_bins(labels, prob_pos, threshold, n_bins)
    n = sum(b["count"] for b in bins)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / max(n, 1))


def _as_arrays(labels, prob_pos) -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels int 0/1, probabilities float in [0, 1]) arrays of the same length."""
    y = np.asarray(labels).astype(int).ravel()
    p = np.asarray(prob_pos, dtype=float).ravel()
    if len(y) != len(p):
        raise SentituneError(f"classification_metrics: labels ({len(y)}) and prob_pos ({len(p)}) differ in length; pass one probability per label.")
    if len(y) == 0:
        raise SentituneError("classification_metrics: no examples to score; pass a non-empty split.")
    if not np.isin(y, (0, 1)).all():
        raise SentituneError("classification_metrics: labels must be 0 (negative) or 1 (positive).")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise SentituneError("classification_metrics: prob_pos must be probabilities in [0, 1]; pass P(positive), not logits.")
    return y, p


def classification_metrics(labels, prob_pos, threshold: float = 0.5) -> dict:
    """JSON-safe binary metrics of P(positive) against 0/1 labels.

    Keys: n, accuracy, accuracy_ci95 [lo, hi] (Wilson), f1, f1_macro, precision, recall, roc_auc, pr_auc,
    log_loss, confusion_matrix [[tn, fp], [fn, tp]], ece (15 equal-width bins). roc_auc and pr_auc are
    None when only one class is present, since they are undefined there.
    """
    y, p = _as_arrays(labels, prob_pos)
    pred = (p >= threshold).astype(int)
    n_correct = int((pred == y).sum())
    both_classes = len(np.unique(y)) == 2
    return {
        "n": int(len(y)),
        "accuracy": n_correct / len(y),
        "accuracy_ci95": wilson_interval(n_correct, len(y)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "f1_macro": float(skm.f1_score(y, pred, average="macro", labels=[0, 1], zero_division=0)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y, p)) if both_classes else None,
        "pr_auc": float(skm.average_precision_score(y, p)) if both_classes else None,
        "log_loss": float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "ece": expected_calibration_error(y, p, threshold),
    }


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's test of two classifiers scored on the same examples.

    `correct_a`/`correct_b` are booleans per example (was model A/B right). Returns counts (both_correct,
    a_only, b_only, both_wrong), both accuracies, the exact two-sided binomial p-value on the discordant
    pairs (`p_value`, valid for any count), and the chi-square statistic with continuity correction with
    its p-value (`chi2`, `p_value_chi2`).
    """
    a = np.asarray(correct_a, dtype=bool).ravel()
    b = np.asarray(correct_b, dtype=bool).ravel()
    if len(a) != len(b) or len(a) == 0:
        raise SentituneError(f"mcnemar: correct_a ({len(a)}) and correct_b ({len(b)}) must be non-empty and score the same examples.")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    discordant = a_only + b_only
    if discordant == 0:
        chi2, p_chi2, p_exact = 0.0, 1.0, 1.0
    else:
        chi2 = (abs(a_only - b_only) - 1) ** 2 / discordant
        p_chi2 = float(stats.chi2.sf(chi2, df=1))
        p_exact = float(stats.binomtest(a_only, discordant, 0.5).pvalue)
    return {
        "n": int(len(a)),
        "both_correct": int((a & b).sum()),
        "a_only": a_only,
        "b_only": b_only,
        "both_wrong": int((~a & ~b).sum()),
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
        "p_value": p_exact,
        "chi2": float(chi2),
        "p_value_chi2": p_chi2,
    }


# ---------------------------------------------------------------- temperature scaling


def margins_of(frame: pd.DataFrame) -> np.ndarray:
    """Logit margins (logit_pos - logit_neg): the `margin` column, else recovered from `prob`."""
    if "margin" in frame and frame["margin"].notna().all():
        return frame["margin"].to_numpy(float)
    p = np.clip(frame["prob"].to_numpy(float), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def fit_temperature(labels, margins) -> float:
    """Temperature T minimising the log loss of sigmoid(margin / T) (Guo et al., 2017); T > 1 softens."""
    y = np.asarray(labels, dtype=float)
    m = np.asarray(margins, dtype=float)

    def nll(log_t: float) -> float:
        z = m / np.exp(log_t)
        # -log sigmoid(z) = logaddexp(0, -z); -log(1 - sigmoid(z)) = logaddexp(0, z)
        return float(np.mean(y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)))

    # optimise log T so that T stays positive; [1/150, 150] covers barely-trained and wildly over-confident models
    result = optimize.minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded")
    return float(np.exp(result.x))


# ---------------------------------------------------------------- slices and error analysis

NEGATION = re.compile(r"\b(?:not|no|never|nothing|nobody|none|neither|nor|nowhere|hardly|barely|without)\b|n't\b", re.IGNORECASE)


def has_negation(texts) -> np.ndarray:
    """True where a text contains a negation word (not, never, n't, ...)."""
    return np.array([bool(NEGATION.search(t or "")) for t in texts], dtype=bool)


def length_buckets(n_tokens: np.ndarray, max_length: int) -> tuple[np.ndarray, list[str]]:
    """Bucket label per example and the bucket order, with edges at max_length/2, max_length and 2x max_length."""
    edges = [max_length // 2, max_length, 2 * max_length]
    names = [f"<= {edges[0]}", f"{edges[0] + 1}-{edges[1]}", f"{edges[1] + 1}-{edges[2]}", f"> {edges[2]}"]
    which = np.searchsorted(edges, n_tokens, side="left")
    return np.array(names, dtype=object)[which], names


def slice_rows(correct: np.ndarray, groups: np.ndarray, order: list) -> list[dict]:
    """Accuracy with its Wilson interval per group, in `order`, skipping empty groups."""
    rows = []
    for group in order:
        mask = groups == group
        n = int(mask.sum())
        if n:
            k = int(correct[mask].sum())
            rows.append({"group": str(group), "n": n, "accuracy": k / n, "accuracy_ci95": wilson_interval(k, n)})
    return rows


def slices(frame: pd.DataFrame, max_length: int, threshold: float = 0.5) -> dict[str, list[dict]]:
    """Accuracy by review length (tokens), true star rating, truncation and negation, where the columns exist."""
    correct = ((frame["prob"].to_numpy(float) >= threshold).astype(int) == frame["label"].to_numpy(int))
    out: dict[str, list[dict]] = {}
    if "n_tokens" in frame:
        groups, order = length_buckets(frame["n_tokens"].to_numpy(int), max_length)
        out["length"] = slice_rows(correct, groups, order)
    if "rating" in frame and (frame["rating"] > 0).any():
        ratings = frame["rating"].fillna(-1).to_numpy(int)
        out["rating"] = slice_rows(correct, ratings, sorted(set(ratings) - {-1}))
    if "truncated" in frame:
        truncated = np.where(frame["truncated"].to_numpy(bool), "truncated", "not truncated")
        out["truncation"] = slice_rows(correct, truncated, ["not truncated", "truncated"])
    if "text" in frame:
        negation = np.where(has_negation(frame["text"]), "with negation", "without negation")
        out["negation"] = slice_rows(correct, negation, ["without negation", "with negation"])
    return out


def weakest_slice(slice_tables: dict[str, list[dict]], min_n: int = 20) -> dict | None:
    """The group with the lowest accuracy among groups of at least `min_n` examples: {slice, group, n, accuracy, ...}."""
    rows = [{"slice": name, **row} for name, table in slice_tables.items() for row in table if row["n"] >= min_n]
    return min(rows, key=lambda r: r["accuracy"]) if rows else None


def excerpt(text: str, chars: int = 400) -> str:
    """The start and end of a long text joined by an ellipsis (reviews often conclude at the end)."""
    text = text or ""
    if len(text) <= chars:
        return text
    head = chars * 2 // 3
    return text[:head].rstrip() + " [...] " + text[-(chars - head):].lstrip()


def example_rows(frame: pd.DataFrame, excerpt_chars: int = 400) -> list[dict]:
    """JSON-safe rows for the error tables: idx, label, prob, rating, n_tokens, truncated, text excerpt."""
    rows = []
    for row in frame.itertuples(index=False):
        rows.append({
            "idx": int(getattr(row, "idx", -1)),
            "label": int(row.label),
            "prob": float(row.prob),
            "rating": int(getattr(row, "rating", -1)),
            "n_tokens": int(getattr(row, "n_tokens", -1)),
            "truncated": bool(getattr(row, "truncated", False)),
            "text": excerpt(str(getattr(row, "text", "")), excerpt_chars),
        })
    return rows


def error_examples(frame: pd.DataFrame, top_n: int = 10, threshold: float = 0.5) -> dict[str, list[dict]]:
    """The most confident false positives and false negatives, and the examples closest to the threshold."""
    pred = frame["prob"] >= threshold
    false_pos = frame[pred & (frame["label"] == 0)].sort_values("prob", ascending=False)
    false_neg = frame[~pred & (frame["label"] == 1)].sort_values("prob", ascending=True)
    least_sure = frame.iloc[np.argsort(np.abs(frame["prob"].to_numpy(float) - threshold), kind="stable")]
    return {
        "false_positives": example_rows(false_pos.head(top_n)),
        "false_negatives": example_rows(false_neg.head(top_n)),
        "least_sure": example_rows(least_sure.head(top_n)),
        "n_false_positives": int(len(false_pos)),
        "n_false_negatives": int(len(false_neg)),
    }


# ---------------------------------------------------------------- a whole run

PREDICTION_COLUMNS = ("label", "prob")


def read_predictions(run_dir: Path) -> pd.DataFrame:
    """`RUN/predictions.parquet` with its required columns checked."""
    path = Path(run_dir) / "predictions.parquet"
    if not path.is_file():
        raise SentituneError(f"{path}: not found; train the run first (sentitune train) or pass --data to predict afresh.")
    frame = pd.read_parquet(path)
    missing = [c for c in PREDICTION_COLUMNS if c not in frame]
    if missing:
        raise SentituneError(f"{path}: missing column(s) {missing}; it should come from sentitune train.")
    return frame


def read_run_config(run_dir: Path) -> dict:
    """`RUN/config.yaml` as a dict ({} when absent)."""
    path = Path(run_dir) / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def read_json(path: Path) -> dict:
    """A JSON file as a dict ({} when absent)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def split_rows(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split (all rows when the frame has no split column)."""
    return frame[frame["split"] == split].reset_index(drop=True) if "split" in frame else frame.reset_index(drop=True)


def predict_on_data(run_dir: Path, data_cfg, config: dict, split: str = "test", backend: str = "torch",
                    windows: bool = False) -> tuple[pd.DataFrame, dict]:
    """Predict one split of another labelled dataset with the run's saved model: (frame, examples descriptor)."""
    from .data import examples_descriptor, prepare_frames
    from .predict import predict_proba

    model_dir = Path(run_dir) / "model"
    if not model_dir.is_dir():
        raise SentituneError(f"{model_dir}: no saved model in the run folder; train it first.")
    frames, _ = prepare_frames(data_cfg)
    frame = frames[split].reset_index(drop=True)
    max_length = int(config.get("max_length", 512))
    batch_size = int(config.get("eval_batch_size", 64)) if backend == "torch" else None
    prob, margin, n_tokens = predict_proba(model_dir, frame["text"].tolist(), batch_size=batch_size, max_length=max_length,
                                           truncation=config.get("truncation", "head+tail"), backend=backend, windows=windows)
    frame = frame.assign(split=split, prob=np.asarray(prob, float), margin=np.asarray(margin, float),
                         n_tokens=np.asarray(n_tokens, int), truncated=np.asarray(n_tokens) > max_length,
                         rating=frame["rating"] if "rating" in frame else -1)
    frame["pred"] = (frame["prob"] >= 0.5).astype(int)
    return frame, examples_descriptor(frame, split, data_cfg)


def temperature_section(validation: pd.DataFrame, evaluated: pd.DataFrame, threshold: float) -> dict | None:
    """Temperature fitted on validation and the evaluated split's metrics before/after, or None without validation rows."""
    if validation.empty or validation["label"].nunique() < 2:
        return None
    t = fit_temperature(validation["label"], margins_of(validation))
    labels = evaluated["label"].to_numpy(int)
    before, after = evaluated["prob"].to_numpy(float), sigmoid(margins_of(evaluated) / t)
    return {
        "value": t,
        "fitted_on": "validation",
        "n_fit": int(len(validation)),
        "metrics_before": classification_metrics(labels, before, threshold),
        "metrics_after": classification_metrics(labels, after, threshold),
        "bins_after": calibration_bins(labels, after, threshold),
    }


def analyze(frame: pd.DataFrame, validation: pd.DataFrame | None = None, max_length: int = 512,
            threshold: float = 0.5, top_n: int = 10, temperature: bool = True) -> dict:
    """Everything the report needs from one scored split: metrics, calibration, temperature, slices, errors."""
    labels, prob = frame["label"].to_numpy(int), frame["prob"].to_numpy(float)
    with_temperature = temperature and validation is not None
    return {
        "n": int(len(frame)),
        "threshold": threshold,
        "max_length": max_length,
        "metrics": classification_metrics(labels, prob, threshold),
        "calibration_bins": calibration_bins(labels, prob, threshold),
        "temperature": temperature_section(validation, frame, threshold) if with_temperature else None,
        "slices": slices(frame, max_length, threshold),
        "errors": error_examples(frame, top_n, threshold),
    }


def evaluate_run(run_dir: str | Path, data_cfg=None, split: str = "test", top_n: int = 10,
                 temperature: bool = True, plots: bool = True, backend: str = "torch", windows: bool = False) -> dict:
    """Score a run and write `RUN/evaluation.json` and `RUN/plots/*.png`; returns the evaluation dict.

    Without `data_cfg` the run's own `predictions.parquet` is re-scored. With a `sentitune.data.DataConfig`
    the saved model predicts `split` of that dataset (any labelled source the data layer reads), and the
    results go to `RUN/evaluations/<dataset name>/` instead, so the run's own evaluation stays intact.
    Temperature scaling is always fitted on the run's own validation predictions. `backend` (with `data_cfg`)
    predicts with an exported ONNX graph instead of the torch model (`sentitune.predict.BACKENDS`); its results
    go to `RUN/evaluations/<dataset name>-<backend>/`. `windows` (with `data_cfg`) reads whole reviews, averaging
    over half-overlapping windows (`-windows` is added to the folder name).
    """
    from . import plots as plotting

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SentituneError(f"{run_dir}: run folder not found; pass a folder made by sentitune train.")
    config, run_metrics = read_run_config(run_dir), read_json(run_dir / "metrics.json")
    predictions = read_predictions(run_dir)
    validation = split_rows(predictions, "validation") if "split" in predictions else None
    if data_cfg is None:
        frame, examples, out_dir = split_rows(predictions, split), run_metrics.get("examples", {}).get(split), run_dir
        source = (config.get("data") or {}).get("data")
    else:
        frame, examples = predict_on_data(run_dir, data_cfg, config, split, backend, windows)
        source = data_cfg.data
        suffix = ("" if backend == "torch" else f"-{backend}") + ("-windows" if windows else "")
        out_dir = run_dir / "evaluations" / (dataset_slug(source) + suffix)
        out_dir.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out_dir / "predictions.parquet", index=False)
    if frame.empty:
        raise SentituneError(f"{run_dir / 'predictions.parquet'}: no rows for split '{split}'; choose validation or test.")
    evaluation = {"run": config.get("name") or run_dir.name, "split": split, "data": source, "examples": examples,
                  **analyze(frame, validation, int(config.get("max_length", 512)), top_n=top_n, temperature=temperature)}
    evaluation["matches_metrics_json"] = matches_metrics_json(evaluation["metrics"], run_metrics.get(split)) if data_cfg is None else None
    if plots:
        evaluation["plots"] = {name: str(path.relative_to(out_dir)) for name, path in
                               plotting.evaluation_plots(frame, evaluation, out_dir / "plots").items()}
        log = read_log(run_dir)
        if data_cfg is None and log:
            evaluation["plots"].update({name: str(path.relative_to(out_dir)) for name, path in
                                        plotting.training_plots(log, out_dir / "plots").items()})
    atomic_write_text(out_dir / "evaluation.json", json.dumps(evaluation, indent=2))
    return evaluation


def matches_metrics_json(metrics: dict, recorded: dict | None, tolerance: float = 1e-6) -> bool | None:
    """Whether the recomputed headline numbers equal those recorded at training time (None when none were)."""
    if not recorded:
        return None
    keys = [k for k in ("n", "accuracy", "f1", "roc_auc") if recorded.get(k) is not None and metrics.get(k) is not None]
    return all(abs(float(metrics[k]) - float(recorded[k])) <= tolerance for k in keys)


def read_log(run_dir: Path) -> list[dict]:
    """`RUN/log.jsonl` as a list of event dicts, skipping blank or torn lines (the file may still be growing)."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [r for r in records if isinstance(r, dict)]


def dataset_slug(source: str) -> str:
    """A folder name for a dataset source: its last path part or Hub id, in safe characters."""
    name = Path(str(source).rstrip("/")).name or "data"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "data"


