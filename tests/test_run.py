"""sentitune.run.folder: the run folder's layout, typed reads, first-format upgrades and atomic writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentitune.core.errors import SentituneError
from sentitune.run.folder import (
    RunFolder,
    probabilities,
    read_baseline,
    read_jsonl,
    upgrade_evaluation,
    upgrade_predictions,
    write_baseline,
)

DOCS_RUNS = Path(__file__).resolve().parents[1] / "docs" / "runs"


def test_paths_work_folder_and_names(tmp_path):
    run = RunFolder.of(tmp_path, "demo")
    assert run.work.path == tmp_path / ".demo.partial" and run.work.is_partial
    assert run.card_path == tmp_path / "demo" / "model" / "README.md"
    for bad in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(SentituneError, match="--name"):
            RunFolder.of(tmp_path, bad)


def test_first_format_predictions_become_class_columns():
    old = pd.DataFrame({"label": [0, 1], "prob": [0.2, 0.9], "margin": [-1.4, 2.2], "pred": [0, 1]})
    new = upgrade_predictions(old)
    assert np.allclose(probabilities(new), [[0.8, 0.2], [0.1, 0.9]])
    assert list(new["pred"]) == [0, 1] and new["logit_1"].tolist() == [-1.4, 2.2]


def test_first_format_evaluation_is_upgraded():
    old = {"metrics": {"accuracy": 0.9}, "errors": {
        "false_positives": [{"idx": 3, "label": 0, "prob": 0.97, "text": "x"}], "false_negatives": [],
        "least_sure": [], "n_false_positives": 1, "n_false_negatives": 0}}
    new = upgrade_evaluation(old)
    row = new["errors"]["confident"]["negative"][0]
    assert (row["label"], row["pred"], row["confidence"]) == ("negative", "positive", 0.97)
    assert new["errors"]["n_errors"] == {"negative": 1, "positive": 0} and new["labels"]["names"][1] == "positive"
    assert upgrade_evaluation(new) is new


@pytest.mark.parametrize("name", ["main-job", "cpu-quick", "cpu-full", "cpu-full-d0"])
def test_committed_runs_load(name, tmp_path):
    run = RunFolder(shutil.copytree(DOCS_RUNS / name, tmp_path / name))
    assert run.config().max_length == 256 and run.labels().names == ("negative", "positive")
    assert run.comparison()["rows"] and run.evaluation()["errors"]["confident"]
    assert run.metrics()["test"]["accuracy"] > 0.85


def test_log_reader_skips_torn_lines(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"step": 1}\n\n{"step": 2, "lo')
    assert read_jsonl(tmp_path / "log.jsonl") == [{"step": 1}]


def test_unfinished_and_missing_runs_are_refused(tmp_path):
    (tmp_path / ".x.partial").mkdir()
    with pytest.raises(SentituneError, match="unfinished run"):
        RunFolder(tmp_path / ".x.partial").require()
    with pytest.raises(SentituneError, match="no metrics.json"):
        RunFolder(tmp_path).require()


def test_finish_swaps_by_renames(tmp_path):
    final = RunFolder.of(tmp_path, "r")
    final.path.mkdir()
    (final.path / "old.txt").write_text("old")
    final.work.path.mkdir()
    final.work.write_metrics({"test": {"accuracy": 1.0}})
    final.work.finish(final)
    assert final.metrics() == {"test": {"accuracy": 1.0}} and not (final.path / "old.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_baseline_round_trip(tmp_path):
    predictions = pd.DataFrame({"idx": [0, 1], "label": [0, 1], "pred": [0, 1], "prob_0": [0.7, 0.2],
                                "prob_1": [0.3, 0.8]})
    folder = write_baseline({"name": "b", "metrics": {"accuracy": 1.0}, "predictions": predictions}, tmp_path)
    back = read_baseline(folder)
    assert back["metrics"] == {"accuracy": 1.0} and back["predictions"].equals(predictions)
    assert json.loads((folder / "baseline.json").read_text())["name"] == "b"
