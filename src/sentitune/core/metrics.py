"""Pure statistics of a classifier on N classes: metrics with intervals, calibration, paired tests.

No files, no models: arrays in, JSON-safe dicts out. Every stage that scores something (training's final
predictions, evaluate, baselines, compare) calls `classification_metrics` so the numbers agree everywhere.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats
from sklearn import metrics as skm

from .errors import SentituneError

ECE_BINS = 15
Z95 = 1.959963984540054
BOOTSTRAP = 1000


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (margins of confident models overflow the naive form)."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, float)))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, float) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def wilson_interval(successes: int, n: int, z: float = Z95) -> list[float]:
    """Wilson score interval for a binomial proportion (well behaved near 0 and 1, unlike the normal one)."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


# ---------------------------------------------------------------- calibration


def calibration_bins(labels, probs, pred=None, n_bins: int = ECE_BINS) -> list[dict]:
    """Equal-width bins over the top-label confidence: [{lo, hi, count, confidence, accuracy}]."""
    y, p = np.asarray(labels, int), np.asarray(probs, float)
    pred = p.argmax(1) if pred is None else np.asarray(pred, int)
    confidence = p[np.arange(len(p)), pred]
    correct = (pred == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins so that a confidence of exactly 1.0 lands in the last bin
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count,
                     "confidence": float(confidence[mask].mean()) if count else None,
                     "accuracy": float(correct[mask].mean()) if count else None})
    return bins


def expected_calibration_error(labels, probs, pred=None, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE: count-weighted mean |accuracy - confidence| over equal-width bins (Guo et al., 2017)."""
    bins = calibration_bins(labels, probs, pred, n_bins)
    n = sum(b["count"] for b in bins)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / max(n, 1))


def fit_temperature(labels, logits) -> float:
    """Temperature T minimising the log loss of softmax(logits / T) (Guo et al., 2017); T > 1 softens."""
    y, z = np.asarray(labels, int), np.asarray(logits, float)

    def nll(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        return float(np.mean(np.logaddexp.reduce(scaled, axis=1) - scaled[np.arange(len(y)), y]))

    # optimise log T so that T stays positive; [1/150, 150] covers barely-trained and wildly over-confident models
    return float(np.exp(optimize.minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded").x))


# ---------------------------------------------------------------- metrics


def _checked(labels, probs, pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(int).ravel()
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or len(y) != len(p):
        raise SentituneError(f"classification_metrics: labels ({len(y)}) and probs {p.shape} must give one row of "
                             "class probabilities per label.")
    if len(y) == 0:
        raise SentituneError("classification_metrics: no examples to score; pass a non-empty split.")
    if (y < 0).any() or (y >= p.shape[1]).any():
        raise SentituneError(f"classification_metrics: labels must be class ids 0..{p.shape[1] - 1}.")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1 + 1e-6).any():
        raise SentituneError("classification_metrics: probs must be probabilities in [0, 1]; "
                             "pass softmax outputs, not logits.")
    pred = p.argmax(1) if pred is None else np.asarray(pred, int).ravel()
    return y, p, pred


def _confusions(y: np.ndarray, pred: np.ndarray, k: int, rows: np.ndarray) -> np.ndarray:
    """(B, K, K) confusion matrices of the resamples `rows` (B, n)."""
    codes = (y[rows] * k + pred[rows]) + (np.arange(len(rows))[:, None] * k * k)
    return np.bincount(codes.ravel(), minlength=len(rows) * k * k).reshape(len(rows), k, k)


def _macro(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Macro F1 and recall and weighted F1 of (…, K, K) confusion matrices (0 where undefined, as sklearn)."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1).astype(float)
    true, predicted = confusion.sum(-1).astype(float), confusion.sum(-2).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(true + predicted > 0, 2 * tp / (true + predicted), 0.0)
        recall = np.where(true > 0, tp / true, 0.0)
    weights = true / true.sum(-1, keepdims=True)
    return {"f1_macro": f1.mean(-1), "recall_macro": recall.mean(-1), "f1_weighted": (f1 * weights).sum(-1),
            "accuracy": tp.sum(-1) / confusion.sum((-2, -1))}


def resamples(n: int, count: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """`count` bootstrap resamples of row indices (the same rows for every system scored on them)."""
    return np.random.default_rng(seed).integers(0, n, size=(count, n))


def bootstrap_intervals(y, pred, k: int, count: int = BOOTSTRAP, seed: int = 0) -> dict[str, list[float]]:
    """95% percentile-bootstrap intervals of macro F1, macro recall and weighted F1."""
    out: dict[str, list[np.ndarray]] = {}
    rows = resamples(len(y), count, seed)
    for chunk in np.array_split(rows, max(1, count // 200)):
        for key, values in _macro(_confusions(y, pred, k, chunk)).items():
            out.setdefault(key, []).append(values)
    return {f"{key}_ci95": np.percentile(np.concatenate(v), [2.5, 97.5]).tolist() for key, v in out.items()
            if key != "accuracy"}


def per_class(y, pred, names) -> list[dict]:
    k = len(names)
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, pred, labels=list(range(k)),
                                                                         zero_division=0)
    return [{"label": str(names[i]), "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
             "support": int(support[i])} for i in range(k)]


def ordinal_metrics(y, pred, k: int) -> dict:
    """Mean absolute error in classes, accuracy within one class, quadratic weighted kappa."""
    error = np.abs(y - pred)
    return {"mae": float(error.mean()), "within_one": float((error <= 1).mean()),
            "qwk": float(skm.cohen_kappa_score(y, pred, labels=list(range(k)), weights="quadratic"))}


def binary_metrics(y, p, pred) -> dict:
    """Positive-class F1/precision/recall and the ranking metrics of P(positive)."""
    both = len(np.unique(y)) == 2
    return {"f1": float(skm.f1_score(y, pred, zero_division=0)),
            "precision": float(skm.precision_score(y, pred, zero_division=0)),
            "recall": float(skm.recall_score(y, pred, zero_division=0)),
            "roc_auc": float(skm.roc_auc_score(y, p[:, 1])) if both else None,
            "pr_auc": float(skm.average_precision_score(y, p[:, 1])) if both else None}


def classification_metrics(labels, probs, names=None, ordinal: bool = False, pred=None,
                           bootstrap: int = BOOTSTRAP, seed: int = 0) -> dict:
    """JSON-safe metrics of class probabilities `probs` (n, K) against class ids `labels`.

    Every K: n, accuracy (+ Wilson 95% CI), f1_macro / recall_macro / f1_weighted (+ bootstrap 95% CIs),
    precision_macro, per_class, confusion_matrix (+ row-normalised), log_loss, ece (top-label). K = 2 adds
    the positive class's f1/precision/recall, roc_auc and pr_auc; K > 2 adds roc_auc (macro one-vs-rest) when every
    class occurs; ordinal scales add mae, within_one and qwk. `pred` overrides the argmax decision (thresholds)."""
    y, p, pred = _checked(labels, probs, pred)
    k = p.shape[1]
    names = list(names) if names is not None else [str(i) for i in range(k)]
    correct = int((pred == y).sum())
    confusion = skm.confusion_matrix(y, pred, labels=list(range(k)))
    macro = {key: float(v) for key, v in _macro(confusion).items() if key != "accuracy"}
    out = {"n": int(len(y)), "n_classes": k, "labels": names, "accuracy": correct / len(y),
           "accuracy_ci95": wilson_interval(correct, len(y)), **macro,
           "precision_macro": float(skm.precision_score(y, pred, labels=list(range(k)), average="macro",
                                                        zero_division=0))}
    if bootstrap:
        out |= bootstrap_intervals(y, pred, k, bootstrap, seed)
    out["per_class"] = per_class(y, pred, names)
    out["confusion_matrix"] = confusion.tolist()
    out["confusion_matrix_normalized"] = (confusion / confusion.sum(1, keepdims=True).clip(min=1)).round(4).tolist()
    clipped = np.clip(p, 1e-7, 1.0)
    out["log_loss"] = float(skm.log_loss(y, clipped / clipped.sum(1, keepdims=True), labels=list(range(k))))
    out["ece"] = expected_calibration_error(y, p, pred)
    if k == 2:
        out |= binary_metrics(y, p, pred)
    elif len(np.unique(y)) == k:
        normalised = p / p.sum(1, keepdims=True)
        out["roc_auc"] = float(skm.roc_auc_score(y, normalised, multi_class="ovr", average="macro",
                                                 labels=list(range(k))))
    if ordinal:
        out |= ordinal_metrics(y, pred, k)
    return out


# ---------------------------------------------------------------- paired tests


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's test of two classifiers scored on the same examples.

    `correct_a`/`correct_b` are booleans per example. Returns counts (both_correct, a_only, b_only,
    both_wrong), both accuracies, the exact two-sided binomial p-value on the discordant pairs (`p_value`,
    valid for any count), and the chi-square statistic with continuity correction (`chi2`, `p_value_chi2`)."""
    a = np.asarray(correct_a, dtype=bool).ravel()
    b = np.asarray(correct_b, dtype=bool).ravel()
    if len(a) != len(b) or len(a) == 0:
        raise SentituneError(f"mcnemar: correct_a ({len(a)}) and correct_b ({len(b)}) "
                             "must be non-empty and score the same examples.")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    discordant = a_only + b_only
    if discordant == 0:
        chi2, p_chi2, p_exact = 0.0, 1.0, 1.0
    else:
        chi2 = (abs(a_only - b_only) - 1) ** 2 / discordant
        p_chi2 = float(stats.chi2.sf(chi2, df=1))
        p_exact = float(stats.binomtest(a_only, discordant, 0.5).pvalue)
    return {"n": int(len(a)), "both_correct": int((a & b).sum()), "a_only": a_only, "b_only": b_only,
            "both_wrong": int((~a & ~b).sum()), "accuracy_a": float(a.mean()), "accuracy_b": float(b.mean()),
            "p_value": p_exact, "chi2": float(chi2), "p_value_chi2": p_chi2}


def paired_bootstrap(labels, pred_a, pred_b, k: int, metric: str = "f1_macro", count: int = BOOTSTRAP,
                     seed: int = 0) -> dict:
    """Paired bootstrap of `metric(a) - metric(b)` on the same resampled examples: delta, 95% CI, two-sided p."""
    y, a, b = (np.asarray(v, int) for v in (labels, pred_a, pred_b))
    deltas = []
    for chunk in np.array_split(resamples(len(y), count, seed), max(1, count // 200)):
        deltas.append(_macro(_confusions(y, a, k, chunk))[metric] - _macro(_confusions(y, b, k, chunk))[metric])
    deltas = np.concatenate(deltas)
    observed = float(_macro(skm.confusion_matrix(y, a, labels=list(range(k))))[metric]
                     - _macro(skm.confusion_matrix(y, b, labels=list(range(k))))[metric])
    p = min(1.0, 2 * min((deltas <= 0).mean(), (deltas >= 0).mean()))
    return {"metric": metric, "delta": observed, "ci95": np.percentile(deltas, [2.5, 97.5]).tolist(),
            "p_value": max(float(p), 1.0 / count), "resamples": count}
