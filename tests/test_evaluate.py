"""Tests of sentitune.evaluate: metrics against hand-computed values, McNemar, and a whole fake run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from sentitune.errors import SentituneError
from sentitune.evaluate import classification_metrics, expected_calibration_error, mcnemar, wilson_interval


def test_classification_metrics_by_hand():
    labels = [0, 0, 1, 1, 1, 0]
    prob = [0.1, 0.6, 0.8, 0.4, 0.9, 0.2]
    m = classification_metrics(labels, prob)
    assert m["n"] == 6
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["f1_macro"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, prob))
    assert m["log_loss"] == pytest.approx(skm.log_loss(labels, prob))
    lo, hi = m["accuracy_ci95"]
    assert lo < m["accuracy"] < hi
    json.dumps(m)  # JSON-safe


def test_threshold_moves_predictions():
    m = classification_metrics([0, 1], [0.3, 0.6], threshold=0.7)
    assert m["confusion_matrix"] == [[1, 0], [1, 0]]


def test_wilson_matches_reference():
    # reference values from statsmodels proportion_confint(81, 263, method="wilson")
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4)
    assert hi == pytest.approx(0.3662, abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_ece_perfectly_calibrated_and_overconfident():
    rng = np.random.default_rng(0)
    prob = rng.uniform(0, 1, 200_000)
    labels = (rng.uniform(0, 1, prob.size) < prob).astype(int)
    assert expected_calibration_error(labels, prob) < 0.01
    # always 99% sure, right only 75% of the time: ECE = 0.24
    labels = np.array([1] * 75 + [0] * 25)
    assert expected_calibration_error(labels, np.full(100, 0.99)) == pytest.approx(0.24)


def test_single_class_aucs_are_none():
    m = classification_metrics([1, 1, 1], [0.9, 0.8, 0.2])
    assert m["roc_auc"] is None and m["pr_auc"] is None
    assert m["confusion_matrix"] == [[0, 0], [1, 2]]


@pytest.mark.parametrize("labels,prob", [([0, 1], [0.5]), ([], []), ([0, 2], [0.1, 0.2]), ([0, 1], [-1.0, 2.0])])
def test_bad_input_is_a_user_error(labels, prob):
    with pytest.raises(SentituneError):
        classification_metrics(labels, prob)


def test_mcnemar_counts_and_pvalues():
    a = [True] * 50 + [True] * 15 + [False] * 5 + [False] * 30
    b = [True] * 50 + [False] * 15 + [True] * 5 + [False] * 30
    r = mcnemar(a, b)
    assert (r["both_correct"], r["a_only"], r["b_only"], r["both_wrong"]) == (50, 15, 5, 30)
    assert r["chi2"] == pytest.approx((abs(15 - 5) - 1) ** 2 / 20)
    assert r["p_value_chi2"] == pytest.approx(math.erfc(math.sqrt(r["chi2"] / 2)))
    # exact two-sided binomial: 2 * P(X <= 5 | n=20, p=0.5)
    assert r["p_value"] == pytest.approx(2 * sum(math.comb(20, k) for k in range(6)) / 2**20)
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0
    with pytest.raises(SentituneError):
        mcnemar([True], [True, False])
