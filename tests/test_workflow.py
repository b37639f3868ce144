"""The main job end to end on a tiny model and synthetic reviews: every stage leaves its artefacts."""

from __future__ import annotations

import json

import pytest
from test_train import tiny_config

from sentitune.workflow import run_main_job


def test_main_job_writes_baselines_comparison_report_and_card(tiny_model, parquet_folder, tmp_path):
    cfg = tiny_config(tiny_model, parquet_folder, tmp_path / "runs", name="main")
    run_dir = run_main_job(cfg, baselines=("majority", "tfidf", "vader"))
    assert ({"baselines", "comparison", "report.html", "report.md", "evaluation.json", "data_stats.json"}
            <= {p.name for p in run_dir.iterdir()})
    table = json.loads((run_dir / "comparison" / "comparison.json").read_text())
    assert table["same_examples"] and {r["name"] for r in table["rows"]} == {"main", "majority", "tfidf-lr", "vader"}
    card = (run_dir / "model" / "README.md").read_text()
    assert "| tfidf-lr |" in card and "model-index" in card
    assert "tfidf-lr" in (run_dir / "report.md").read_text()
    assert not list((tmp_path / "runs").glob(".*"))  # no staging or partial folders left behind


def test_main_job_on_three_classes(tiny_model, tmp_path):
    import pandas as pd
    from conftest import synthetic_reviews

    rows = synthetic_reviews(40)
    rows = pd.concat([rows, rows.assign(text="so-so average " + rows.text, label=2)])
    rows.assign(label=rows.label.map({0: "negative", 1: "positive", 2: "neutral"})).to_csv(
        tmp_path / "three.csv", index=False)
    cfg = tiny_config(tiny_model, tmp_path / "three.csv", tmp_path / "runs", name="three")
    run_dir = run_main_job(cfg, baselines=("majority", "tfidf", "vader"))
    table = json.loads((run_dir / "comparison" / "comparison.json").read_text())
    assert (table["ranked_by"] == "f1_macro"
            and {r["name"] for r in table["rows"]} == {"three", "majority", "tfidf-lr", "vader"})
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["labels"] == {"names": ["negative", "neutral", "positive"], "ordinal": True}
    assert "mae" in metrics["test"] and len(metrics["test"]["confusion_matrix"]) == 3
    assert "neutral" in (run_dir / "model" / "README.md").read_text() and (run_dir / "report.html").is_file()
    from transformers import pipeline

    from sentitune.machine import Runtime
    from sentitune.predict import SentimentModel

    texts = ["so-so average plot", "wonderful film", "awful waste"]
    piped = pipeline("text-classification", model=str(run_dir / "model"), top_k=None)(texts)
    ours = SentimentModel.from_pretrained(run_dir, runtime=Runtime.resolve("fp32")).predict(texts)
    for theirs, mine in zip(piped, ours):  # pipeline() returns the class names with the same probabilities
        assert {d["label"]: d["score"] for d in theirs} == pytest.approx(mine["scores"], abs=1e-5)
