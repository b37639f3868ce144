"""Evaluation stage: metrics, calibration, significance tests, slices and error analysis of a run.

`classification_metrics` and `mcnemar` are the shared building blocks (see docs/CONTRACTS.md);
`evaluate_run` scores a whole run folder and writes `evaluation.json` and `plots/*.png`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from .errors import SentituneError

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
