"""The main job end to end on a tiny model and synthetic reviews: every stage leaves its artefacts."""

from __future__ import annotations

import json
import re

import pytest
from test_train import tiny_config

from sentitune.app.workflow import run_main_job
from sentitune.core.errors import SentituneError
from sentitune.run.config import load_config


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

    from sentitune.core.machine import Runtime
    from sentitune.inference.predict import SentimentModel

    texts = ["so-so average plot", "wonderful film", "awful waste"]
    piped = pipeline("text-classification", model=str(run_dir / "model"), top_k=None)(texts)
    ours = SentimentModel.from_pretrained(run_dir, runtime=Runtime.resolve("fp32")).predict(texts)
    for theirs, mine in zip(piped, ours):  # pipeline() returns the class names with the same probabilities
        assert {d["label"]: d["score"] for d in theirs} == pytest.approx(mine["scores"], abs=1e-5)


def test_main_job_on_small_imbalanced_three_classes_takes_what_exists(tiny_model, tmp_path, caplog):
    """cpu-quick asks for 2,500 / 250 / 1,000 per class; a 3-class file of 290 / 140 / 60 rows still runs end to
    end: each class gives what it has, one line says so, and checkpoints are picked on macro-F1."""
    import pandas as pd
    from conftest import synthetic_reviews

    rows = synthetic_reviews(150)
    neutral = rows.assign(text="so-so average " + rows.text, label=2)
    table = pd.concat([rows[rows.label == 0].head(145).assign(label="negative"),
                       rows[rows.label == 1].head(70).assign(label="positive"),
                       neutral.head(30).assign(label="neutral")]).sample(frac=1, random_state=0)
    pd.concat([table, table.assign(text=table.text + " indeed")]).to_csv(tmp_path / "small.csv", index=False)
    cfg = load_config(preset="cpu-quick", overrides={
        "model": str(tiny_model), "output_dir": str(tmp_path / "runs"), "name": "small", "max_length": 64,
        "batch_size": 8, "data": {"data": str(tmp_path / "small.csv")}})
    with caplog.at_level("WARNING", logger="sentitune"):
        run_dir = run_main_job(cfg, baselines=("majority", "tfidf"), estimate=False)
    assert "fewer rows than the per-class sizes asked for" in caplog.text
    assert re.search(r"train: all \d+ of negative; train: all \d+ of neutral; train: all \d+ of positive", caplog.text)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["selection_metric"] == "f1_macro"
    assert metrics["data"]["short_classes"]["train"] and (run_dir / "report.html").is_file()


def test_main_job_reports_the_tfidf_ensemble_as_its_own_row(tiny_model, parquet_folder, tmp_path):
    cfg = tiny_config(tiny_model, parquet_folder, tmp_path / "runs", name="ens")
    run_dir = run_main_job(cfg, baselines=("majority", "tfidf"), ensemble="tfidf", estimate=False)
    table = json.loads((run_dir / "comparison" / "comparison.json").read_text())
    rows = {r["name"]: r for r in table["rows"]}
    assert rows["ens+tfidf-lr"]["kind"] == "ensemble" and rows["ens"]["kind"] == "fine-tuned"
    assert table["best_baseline"] == "tfidf-lr"  # the ensemble is neither the model nor a baseline
    assert table["decision"] in ("fine-tuned wins", "tie: pick by speed/size", "baseline wins") and table["advice"]
    with pytest.raises(SentituneError, match="--ensemble tfidf: .* add tfidf to --baselines"):
        run_main_job(cfg, baselines=("majority",), ensemble="tfidf", estimate=False)


def test_an_interrupted_main_job_resumes_as_planned(tiny_model, parquet_folder, tmp_path, monkeypatch):
    """Killed in training, `run --resume` keeps the plan and the baselines it had and goes on from the checkpoint."""
    import sentitune.app.workflow as workflow
    import sentitune.training.train as training

    cfg = tiny_config(tiny_model, parquet_folder, tmp_path / "runs", name="again")
    real_fit = training.fit

    def interrupted(cfg, prepared, model, work, resume, callbacks, recipe):
        real_fit(cfg, prepared, model, work, resume, callbacks, recipe)  # checkpoints written, then the kill
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_main_job(cfg, baselines=("majority", "tfidf"), time_budget_s=600)
    staging = tmp_path / "runs" / ".again.baselines"
    planned = json.loads((staging / "job.json").read_text())
    assert json.loads((staging / "done.json").read_text()) == {"majority": ["majority"], "tfidf": ["tfidf-lr"]}
    monkeypatch.setattr(training, "fit", real_fit)
    monkeypatch.setattr(workflow, "planned_job", guarded(workflow.planned_job))
    import sentitune.evaluation.baselines as baselines

    monkeypatch.setattr(baselines, "run_baseline", lambda *a, **k: pytest.fail("a kept baseline was scored again"))
    run_dir = run_main_job(cfg, baselines=("majority", "tfidf"), time_budget_s=600, resume=True)
    assert load_config(run_dir / "config.yaml").data == load_config(overrides=planned["cfg"]).data
    assert {p.name for p in (run_dir / "baselines").iterdir()} == {"majority", "tfidf-lr"}
    assert not staging.exists() and (run_dir / "report.html").is_file()


def guarded(planned_job):
    """`planned_job` that must not measure this machine again (a resumed job keeps its plan)."""
    def planned(*args, **kwargs):
        import sentitune.app.budget as budget

        original, budget.size_job = budget.size_job, lambda *a, **k: pytest.fail("the job was measured again")
        try:
            return planned_job(*args, **kwargs)
        finally:
            budget.size_job = original

    return planned


def with_unlabelled(folder, n: int = 40):
    """`folder` plus an unsupervised split (texts only), two of them test texts that the student must never see."""
    import pandas as pd
    from conftest import synthetic_reviews

    test = pd.read_parquet(folder / "test.parquet")["text"][:2].tolist()
    pd.DataFrame({"text": synthetic_reviews(n // 2, seed=5)["text"].tolist() + test}).to_parquet(
        folder / "unsupervised.parquet")
    return folder


def test_self_distill_trains_then_teaches_a_student_of_its_size(tiny_model, parquet_folder, tmp_path):
    from sentitune.app.workflow import fine_tune
    from sentitune.run.folder import RunFolder

    cfg = tiny_config(tiny_model, with_unlabelled(parquet_folder), tmp_path / "runs", name="best",
                      self_distill="tfidf", self_distill_texts=30)
    student = RunFolder(fine_tune(cfg))
    teacher = RunFolder(tmp_path / "runs" / "best")
    assert student.name == "best-taught" and (teacher.model_dir / "README.md").is_file()
    taught = student.metrics()["distillation"]
    assert taught["teacher"]["name"].endswith("+tfidf") and taught["config"]["teacher_ensemble"] == "tfidf"
    assert taught["transfer"]["dropped_test"] == 2 and taught["transfer"]["used"] == 30
    assert taught["soft_labels"]["transfer"] == 30 and taught["soft_labels"]["labelled"] > 0
    depth = json.loads((teacher.model_dir / "config.json").read_text())["num_hidden_layers"]
    assert json.loads((student.model_dir / "config.json").read_text())["num_hidden_layers"] == depth
    learned = student.config()
    assert (learned.learning_rate, learned.epochs, learned.checkpoint, learned.self_distill) == (
        cfg.learning_rate / 2, 1.0, "last", "none")
    assert "best-taught" in (student.model_dir / "README.md").read_text()


def test_self_distill_resumes_after_the_run_without_training_it_again(tiny_model, parquet_folder, tmp_path):
    import shutil

    from sentitune.app.workflow import fine_tune

    cfg = tiny_config(tiny_model, with_unlabelled(parquet_folder), tmp_path / "runs", name="best",
                      self_distill="model", self_distill_texts=10)
    fine_tune(cfg)
    teacher_metrics = tmp_path / "runs" / "best" / "metrics.json"
    stamp = teacher_metrics.stat().st_mtime_ns
    shutil.rmtree(tmp_path / "runs" / "best-taught")  # as if killed before the student had started
    assert fine_tune(cfg, resume=True).name == "best-taught" and teacher_metrics.stat().st_mtime_ns == stamp


def test_self_distill_refuses_a_taken_student_name_before_training(tiny_model, parquet_folder, tmp_path):
    from sentitune.app.workflow import fine_tune
    from sentitune.core.errors import SentituneError

    (tmp_path / "runs" / "best-taught").mkdir(parents=True)
    cfg = tiny_config(tiny_model, parquet_folder, tmp_path / "runs", name="best", self_distill="model")
    with pytest.raises(SentituneError, match="best-taught: a finished run already exists"):
        fine_tune(cfg)
    assert not (tmp_path / "runs" / "best").exists()


def test_main_job_with_self_distill_measures_the_student(tiny_model, parquet_folder, tmp_path):
    cfg = tiny_config(tiny_model, parquet_folder, tmp_path / "runs", name="main", self_distill="model")
    run_dir = run_main_job(cfg, baselines=("majority",), estimate=False)
    assert run_dir.name == "main-taught" and (run_dir / "report.html").is_file()
    table = json.loads((run_dir / "comparison" / "comparison.json").read_text())
    assert {r["name"] for r in table["rows"]} == {"main-taught", "majority"}
    assert (tmp_path / "runs" / "main" / "model" / "README.md").is_file()


def test_cpu_best_is_cpu_full_then_the_measured_ensemble_distillation():
    """cpu-best chains the two commands of the measured 92.65% (docs/runs/ensemble-teacher-amx) with their settings."""
    import dataclasses
    from pathlib import Path

    import yaml

    from sentitune.app.workflow import self_distill_settings
    from sentitune.run.config import load_config

    best, full = load_config(preset="cpu-best"), load_config(preset="cpu-full")
    assert best.self_distill == "tfidf" and dataclasses.replace(best, self_distill="none") == full
    measured = Path(__file__).parents[1] / "docs" / "runs" / "ensemble-teacher-amx"
    taught = json.loads((measured / "metrics.json").read_text())["distillation"]["config"]
    student_cfg = yaml.safe_load((measured / "config.yaml").read_text())
    dcfg, student = self_distill_settings(best, depth=6)
    assert {k: v for k, v in dcfg.to_dict().items() if k != "transfer_data"} == {
        k: v for k, v in taught.items() if k != "transfer_data"}
    assert (student["learning_rate"], student["epochs"]) == (student_cfg["learning_rate"], student_cfg["epochs"])
