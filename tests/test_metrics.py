"""sentitune.core.metrics: N-class metrics against hand-computed and scikit-learn values, intervals, paired tests."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from sentitune.core.errors import SentituneError
from sentitune.core.metrics import (
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    mcnemar,
    paired_bootstrap,
    sigmoid,
    softmax,
    wilson_interval,
)


def binary(prob):
    p = np.asarray(prob, float)
    return np.stack([1 - p, p], 1)


def test_binary_metrics_by_hand():
    labels = [0, 0, 1, 1, 1, 0]
    prob = [0.1, 0.6, 0.8, 0.4, 0.9, 0.2]
    m = classification_metrics(labels, binary(prob), ["negative", "positive"])
    assert (m["n"], m["n_classes"], m["confusion_matrix"]) == (6, 2, [[2, 1], [1, 2]])
    assert m["accuracy"] == pytest.approx(4 / 6) and m["f1"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1_macro"] == pytest.approx(2 / 3) and m["recall_macro"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, prob))
    assert m["log_loss"] == pytest.approx(skm.log_loss(labels, prob))
    assert m["per_class"][1] == {"label": "positive", "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
                                 "f1": pytest.approx(2 / 3), "support": 3}
    lo, hi = m["accuracy_ci95"]
    assert lo < m["accuracy"] < hi
    json.dumps(m)


def test_three_classes_match_sklearn_and_have_intervals():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    probs = softmax(np.eye(3)[y] * 2 + rng.normal(0, 1, (600, 3)))
    pred = probs.argmax(1)
    m = classification_metrics(y, probs, ["neg", "neu", "pos"])
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"))
    for key in ("f1_macro", "recall_macro", "f1_weighted"):
        lo, hi = m[f"{key}_ci95"]
        assert lo < m[key] < hi and hi - lo < 0.15
    assert np.allclose(np.sum(m["confusion_matrix_normalized"], 1), 1, atol=1e-3)
    assert [c["support"] for c in m["per_class"]] == np.bincount(y).tolist()
    assert "mae" not in m and "f1" not in m


def test_ordinal_scale_adds_mae_within_one_and_kappa():
    y = np.array([0, 1, 2, 3, 4, 4, 0])
    pred = np.array([0, 2, 2, 1, 4, 3, 4])
    m = classification_metrics(y, np.eye(5)[pred], [str(i) for i in range(5)], ordinal=True)
    assert m["mae"] == pytest.approx(np.abs(y - pred).mean())
    assert m["within_one"] == pytest.approx(5 / 7)
    assert m["qwk"] == pytest.approx(skm.cohen_kappa_score(y, pred, weights="quadratic"))


def test_explicit_decisions_override_the_argmax():
    m = classification_metrics([0, 1], binary([0.3, 0.6]), pred=[0, 0])
    assert m["confusion_matrix"] == [[1, 0], [1, 0]]


def test_wilson_matches_reference():
    lo, hi = wilson_interval(81, 263)  # statsmodels proportion_confint(81, 263, method="wilson")
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_top_label_ece():
    rng = np.random.default_rng(0)
    prob = rng.uniform(0, 1, 200_000)
    labels = (rng.uniform(0, 1, prob.size) < prob).astype(int)
    assert expected_calibration_error(labels, binary(prob)) < 0.01
    labels = np.array([1] * 75 + [0] * 25)  # always 99% sure, right 75% of the time
    assert expected_calibration_error(labels, binary(np.full(100, 0.99))) == pytest.approx(0.24)


def test_single_class_aucs_are_none():
    m = classification_metrics([1, 1, 1], binary([0.9, 0.8, 0.2]))
    assert m["roc_auc"] is None and m["pr_auc"] is None


@pytest.mark.parametrize("labels,probs", [([0, 1], [[0.5, 0.5]]), ([], np.zeros((0, 2))), ([0, 2], [[0.9, 0.1]] * 2),
                                          ([0, 1], [[-1.0, 2.0]] * 2), ([0, 1], [0.2, 0.3])])
def test_bad_input_is_a_user_error(labels, probs):
    with pytest.raises(SentituneError):
        classification_metrics(labels, probs)


def test_mcnemar_counts_and_pvalues():
    a = [True] * 50 + [True] * 15 + [False] * 5 + [False] * 30
    b = [True] * 50 + [False] * 15 + [True] * 5 + [False] * 30
    r = mcnemar(a, b)
    assert (r["both_correct"], r["a_only"], r["b_only"], r["both_wrong"]) == (50, 15, 5, 30)
    assert r["chi2"] == pytest.approx((abs(15 - 5) - 1) ** 2 / 20)
    assert r["p_value_chi2"] == pytest.approx(math.erfc(math.sqrt(r["chi2"] / 2)))
    assert r["p_value"] == pytest.approx(2 * sum(math.comb(20, k) for k in range(6)) / 2**20)
    with pytest.raises(SentituneError):
        mcnemar([True], [True, False])


def test_paired_bootstrap_separates_a_real_gap_from_none():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 2000)
    good = np.where(rng.uniform(size=y.size) < 0.8, y, rng.integers(0, 3, y.size))
    bad = np.where(rng.uniform(size=y.size) < 0.6, y, rng.integers(0, 3, y.size))
    gap = paired_bootstrap(y, good, bad, 3)
    assert gap["delta"] > 0.1 and gap["ci95"][0] > 0 and gap["p_value"] <= 0.002
    same = paired_bootstrap(y, good, good, 3)
    assert same["delta"] == 0 and same["p_value"] == 1.0


def test_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(1)
    margin = rng.normal(0, 2, 20_000)
    labels = (rng.uniform(size=margin.size) < sigmoid(margin)).astype(int)
    logits = np.stack([np.zeros_like(margin), 3.0 * margin], 1)
    assert fit_temperature(labels, logits) == pytest.approx(3.0, rel=0.05)
