"""Tests of sentitune.evaluate: metrics against hand-computed values, McNemar, and a whole fake run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from fake_run import make_fake_run
from sentitune.data import DataConfig
from sentitune.errors import SentituneError
from sentitune.evaluate import (classification_metrics, error_examples, evaluate_run, expected_calibration_error,
                                fit_temperature, has_negation, mcnemar, sigmoid, wilson_interval)


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


def test_fit_temperature_recovers_known_scale():
    rng = np.random.default_rng(1)
    true_margin = rng.normal(0, 2, 20_000)
    labels = (rng.uniform(size=true_margin.size) < sigmoid(true_margin)).astype(int)
    assert fit_temperature(labels, 3.0 * true_margin) == pytest.approx(3.0, rel=0.05)


def test_negation_words():
    assert has_negation(["I did not like it", "It isn't good", "Never again", "nothing works"]).all()
    assert not has_negation(["A knotty, noble film", "Notable acting", ""]).any()


def test_error_examples_are_the_most_confident_mistakes():
    import pandas as pd

    frame = pd.DataFrame({"idx": range(6), "label": [0, 0, 1, 1, 0, 1], "prob": [0.99, 0.7, 0.02, 0.4, 0.1, 0.9],
                          "text": ["x" * 1000] + ["short"] * 5})
    errors = error_examples(frame, top_n=1)
    assert errors["false_positives"][0]["idx"] == 0 and errors["false_negatives"][0]["idx"] == 2
    assert errors["least_sure"][0]["idx"] == 3
    assert (errors["n_false_positives"], errors["n_false_negatives"]) == (2, 2)
    assert "[...]" in errors["false_positives"][0]["text"] and len(errors["false_positives"][0]["text"]) < 420


def test_evaluate_run_writes_evaluation_and_plots(tmp_path):
    run = make_fake_run(tmp_path)
    evaluation = evaluate_run(run)
    saved = json.loads((run / "evaluation.json").read_text())
    recorded = json.loads((run / "metrics.json").read_text())["test"]
    for key in ("n", "accuracy", "f1", "roc_auc", "ece", "accuracy_ci95"):
        assert saved["metrics"][key] == pytest.approx(recorded[key]), key
    assert saved["metrics"]["confusion_matrix"] == recorded["confusion_matrix"]
    assert saved["matches_metrics_json"] is True
    assert set(saved["slices"]) == {"length", "rating", "truncation", "negation"}
    assert sum(r["n"] for r in saved["slices"]["length"]) == 400
    # the fake run is over-confident by design: temperature > 1 and a lower ECE after scaling
    t = saved["temperature"]
    assert t["value"] > 1.5 and t["metrics_after"]["ece"] < t["metrics_before"]["ece"]
    assert t["metrics_after"]["accuracy"] == t["metrics_before"]["accuracy"]
    assert len(saved["errors"]["false_positives"]) == 10
    for name in ("loss", "f1", "learning_rate", "confusion_matrix", "roc_pr", "reliability", "accuracy_by_length", "accuracy_by_rating"):
        png = run / evaluation["plots"][name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_evaluate_run_on_other_data_uses_predict_proba(tmp_path, monkeypatch):
    import sys
    import types

    import pandas as pd

    run = make_fake_run(tmp_path)
    texts = [f"great film number {i}" for i in range(30)] + [f"not good at all, film {i}" for i in range(30)]
    pd.DataFrame({"review": texts, "sentiment": ["pos"] * 30 + ["neg"] * 30}).to_csv(tmp_path / "other.csv", index=False)
    calls = {}

    def fake_predict_proba(model_dir, texts, batch_size=64, max_length=512, truncation="head+tail", backend="torch", windows=False):
        calls.update(model_dir=model_dir, n=len(texts), max_length=max_length, backend=backend, windows=windows)
        margin = np.array([2.0 if "great" in t else -2.0 for t in texts])
        return sigmoid(margin), margin, np.array([len(t.split()) + 2 for t in texts])

    monkeypatch.setitem(sys.modules, "sentitune.predict", types.SimpleNamespace(predict_proba=fake_predict_proba))
    cfg = DataConfig(data=str(tmp_path / "other.csv"), text_column="review", label_column="sentiment", test_size=0.5)
    evaluation = evaluate_run(run, data_cfg=cfg, plots=False)
    out = run / "evaluations" / "other.csv"
    assert calls["model_dir"] == run / "model" and calls["max_length"] == 256
    assert evaluation["metrics"]["accuracy"] == 1.0 and evaluation["n"] == calls["n"]
    assert evaluation["examples"]["fingerprint"]
    assert (out / "evaluation.json").is_file() and (out / "predictions.parquet").is_file()
    assert not (run / "evaluation.json").exists()  # the run's own evaluation is untouched
    evaluate_run(run, data_cfg=cfg, plots=False, backend="onnx-int8")
    assert calls["backend"] == "onnx-int8" and (run / "evaluations" / "other.csv-onnx-int8" / "evaluation.json").is_file()
    evaluate_run(run, data_cfg=cfg, plots=False, windows=True)
    assert calls["windows"] and (run / "evaluations" / "other.csv-windows" / "evaluation.json").is_file()


def test_evaluate_run_errors_are_one_line(tmp_path):
    with pytest.raises(SentituneError, match="run folder not found"):
        evaluate_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SentituneError, match="predictions.parquet"):
        evaluate_run(tmp_path / "empty")
