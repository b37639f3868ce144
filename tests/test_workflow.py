"""The main job end to end on a tiny model and synthetic reviews: every stage leaves its artefacts."""

from __future__ import annotations

import json

from test_train import tiny_config

from sentitune.workflow import run_main_job


def test_main_job_writes_baselines_comparison_report_and_card(tiny_model, parquet_folder, tmp_path):
    cfg = tiny_config(tiny_model, parquet_folder, tmp_path / "runs", name="main")
    run_dir = run_main_job(cfg, baselines=("tfidf", "vader"))
    assert {"baselines", "comparison", "report.html", "report.md", "evaluation.json", "data_stats.json"} <= {p.name for p in run_dir.iterdir()}
    table = json.loads((run_dir / "comparison" / "comparison.json").read_text())
    assert table["same_examples"] and {r["name"] for r in table["rows"]} == {"main", "tfidf-lr", "vader"}
    card = (run_dir / "model" / "README.md").read_text()
    assert "| tfidf-lr |" in card and "model-index" in card
    assert "tfidf-lr" in (run_dir / "report.md").read_text()
    assert not list((tmp_path / "runs").glob(".*"))  # no staging or partial folders left behind
