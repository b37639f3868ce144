"""The training engine on a tiny random BERT: a complete run folder, pipeline() reload, kill -9 + resume, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from case_counts import record
from conftest import IMDB, tiny_bert

from sentitune.core.errors import SentituneError
from sentitune.core.machine import Runtime
from sentitune.run.config import PRESETS, load_config
from sentitune.training.train import train


def tiny_config(model: Path, data: Path, out: Path, name: str = "tiny", **overrides):
    values = {"model": str(model), "output_dir": str(out), "name": name, "max_steps": 8, "batch_size": 8,
              "learning_rate": 1e-3, "logging_steps": 2, "eval_steps": 4, "max_length": 64,
              "data": {"data": str(data), "validation_size": 0.2}}
    return load_config(overrides={**values, **overrides})


def kill_at(point: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`sentitune ARGS` in a subprocess that SIGKILLs itself at `point` (see killer.py)."""
    killer = Path(__file__).with_name("killer.py")
    return subprocess.run([sys.executable, str(killer), point, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def tiny_run(tiny_model, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    from conftest import synthetic_reviews

    synthetic_reviews(60, 0).to_parquet(data / "train.parquet")
    synthetic_reviews(30, 1).to_parquet(data / "test.parquet")
    cfg = tiny_config(tiny_model, data, tmp_path_factory.mktemp("runs"))
    return train(cfg), cfg, data


def test_run_folder_is_complete(tiny_run):
    run_dir, cfg, _ = tiny_run
    assert {p.name for p in run_dir.iterdir()} >= {"model", "config.yaml", "metrics.json", "predictions.parquet",
                                                   "log.jsonl", "tb"}
    assert not (run_dir / "model" / "training_args.bin").exists()
    assert not any(p.name.endswith(".partial") for p in run_dir.parent.iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert {"accuracy", "accuracy_ci95", "f1", "f1_macro", "recall_macro", "roc_auc", "per_class",
                "log_loss"} <= set(metrics[split])
    assert metrics["labels"] == {"names": ["negative", "positive"], "ordinal": False}
    assert metrics["test"]["n"] == 60 and metrics["examples"]["test"]["size"] == 60
    assert metrics["train"]["precision"] in {"bf16", "fp32"} and metrics["train"]["steps"] > 0
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(preds["split"]) == {"validation", "test"}
    assert (preds[["prob_0", "prob_1"]].to_numpy().argmax(1) == preds["pred"]).all()
    logs = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert any("loss" in r and r["examples_per_s"] > 0 for r in logs) and any("eval_f1" in r for r in logs)
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))


def test_saved_config_rebuilds_the_same_config(tiny_run):
    run_dir, cfg, _ = tiny_run
    assert load_config(run_dir / "config.yaml") == cfg


def test_pipeline_loads_the_model_with_labels_and_same_predictions(tiny_run):
    from transformers import pipeline

    from sentitune.inference.predict import SentimentModel

    run_dir, _, _ = tiny_run
    preds = pd.read_parquet(run_dir / "predictions.parquet").query("split == 'test' and not truncated")
    clf = pipeline("text-classification", model=str(run_dir / "model"), top_k=None)
    texts = preds["text"].tolist()[:20]
    piped = np.array([{d["label"]: d["score"] for d in out}["positive"] for out in clf(texts)])
    ours = SentimentModel.from_pretrained(run_dir / "model", runtime=Runtime.resolve("fp32")).predict_proba(texts)[:, 1]
    assert np.allclose(piped, ours, atol=1e-5)
    assert np.allclose(preds["prob_1"].to_numpy()[:20], ours, atol=0.02)  # training-time predictions may run in bf16


CRASH_ARGS = ("--validation-size", "0.2", "--max-steps", "12", "--batch-size", "8", "--learning-rate", "1e-3",
              "--eval-steps", "4", "--max-length", "64", "--early-stopping-patience", "0")  # 6 steps per epoch


@pytest.fixture(scope="module")
def straight_run(tiny_model, tiny_run, tmp_path_factory):
    """The uninterrupted run every crash case is compared with (two epochs, length grouping on)."""
    from test_cli import sentitune as in_process  # the real entry point without a second torch import

    out = tmp_path_factory.mktemp("straight")
    args = ("train", "--model", str(tiny_model), "--data", str(tiny_run[2]), *CRASH_ARGS, "--output-dir", str(out))
    assert in_process(*args, "--name", "straight").returncode == 0
    assert load_config(out / "straight" / "config.yaml").group_by_length  # epoch 2's order is length-grouped
    return out / "straight", args


@pytest.mark.parametrize("point, resumed_from", [
    ("prepare", None),       # killed while tokenizing: nothing written yet
    ("step:2", None),        # training, before the first checkpoint: a resume trains from the start
    ("step:5", "checkpoint-4"),  # mid-step in epoch 1
    ("step:9", "checkpoint-8"),  # mid-step in epoch 2: the length-grouped order of epoch 2 is restored
    ("save:8", "checkpoint-4"),  # checkpoint 8 half-written: skipped
    ("end", "checkpoint-12"),    # training ended, nothing of the final save written: no step 13
    ("test", None),          # during the test pass (validation predicted): predictions redone, training is not
    ("final", None),         # during the final save: the save is redone, training is not
    ("swap", None),          # replacing an older run with --overwrite: the old one moved aside, the new not yet in
])
def test_kill_9_anywhere_then_resume_gives_the_uninterrupted_metrics(straight_run, tmp_path, monkeypatch, point,
                                                                     resumed_from):
    from test_cli import sentitune as in_process

    straight, args = straight_run
    monkeypatch.setenv("SENTITUNE_CACHE", str(tmp_path / "cache"))
    args = (*args[:-1], str(tmp_path))
    run = tmp_path / "run"
    if point == "swap":
        shutil.copytree(straight, run)  # an older run to replace
    killed = kill_at(point, *args, "--name", "run", *(("--overwrite",) if point == "swap" else ()),
                     env={"SENTITUNE_CACHE": str(tmp_path / "cache")})
    record("fault", f"SIGKILL at {point} (train)")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not run.exists()  # nothing that looks finished after a crash
    resumed = in_process(*args, "--name", "run", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".run")]  # no .partial, .old-*, lock
    assert not list((tmp_path / "cache").glob("tokenized/.writer-*"))
    expected, got = (json.loads((folder / "metrics.json").read_text()) for folder in (straight, run))
    assert got["train"]["steps"] == expected["train"]["steps"] == 12
    assert got["train"]["resumed_from"] == resumed_from
    assert got["train"]["train_loss"] == pytest.approx(expected["train"]["train_loss"], rel=1e-6)  # all steps
    for split in ("validation", "test"):
        assert got[split] == expected[split]  # bit-exact on the tiny model
    assert pd.read_parquet(run / "predictions.parquet").equals(pd.read_parquet(straight / "predictions.parquet"))


def test_two_process_ddp_on_cpu(tiny_model, tiny_run, tmp_path):
    _, _, data = tiny_run
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "sentitune", "train",
         "--model", str(tiny_model), "--data", str(data), "--validation-size", "0.2", "--output-dir", str(tmp_path),
         "--name", "ddp", "--max-steps", "4", "--batch-size", "4", "--max-length", "64"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 4 and metrics["test"]["n"] == 60


def test_a_different_head_is_reinitialised(tmp_path, caplog):
    from sentitune.core.labels import LabelScheme
    from sentitune.models.loading import load_classifier

    stars = {i: f"{i + 1} star{'s' if i else ''}" for i in range(5)}
    model = load_classifier(str(tiny_bert(tmp_path / "stars", num_labels=5, id2label=stars)),
                            LabelScheme(("negative", "positive")))
    assert model.config.id2label == {0: "negative", 1: "positive"} and model.classifier.out_features == 2
    assert "re-initialising" in caplog.text and "5-label head" in caplog.text


def test_dropout_overrides_reach_the_model_config(tiny_model):
    from sentitune.models.loading import load_classifier

    model = load_classifier(str(tiny_model), dropout=0.25, attention_dropout=0.0)
    assert model.config.hidden_dropout_prob == 0.25 and model.config.attention_probs_dropout_prob == 0.0


def test_an_existing_run_is_a_clear_error_even_with_resume(tiny_run, tiny_model):
    run_dir, cfg, _ = tiny_run
    with pytest.raises(SentituneError, match="already exists"):
        train(cfg)
    with pytest.raises(SentituneError, match="already exists"):
        train(cfg, resume=True)


def test_presets_and_config_files(tmp_path):
    for name in PRESETS:
        assert load_config(preset=name).max_length in {None, 256, 512}
    (tmp_path / "c.yaml").write_text("learning_rate: 3.0e-5\ndata:\n  train_per_class: 7\n")
    cfg = load_config(tmp_path / "c.yaml", preset="cpu-quick", overrides={"epochs": 2.0, "data": {"seed": None}})
    assert (cfg.learning_rate, cfg.epochs, cfg.data.train_per_class, cfg.data.test_per_class) == (3e-5, 2.0, 7, 1000)
    (tmp_path / "bad.yaml").write_text("learning_rat: 1\n")
    with pytest.raises(SentituneError, match=r"unknown field\(s\) \['learning_rat'\]"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(SentituneError, match="--preset nope"):
        load_config(preset="nope")


@pytest.mark.slow
@pytest.mark.skipif(not IMDB.is_dir(), reason="the shared IMDB copy is not beside the repo")
def test_default_minilm_learns_on_an_imdb_slice(tmp_path):
    cfg = load_config(preset="cpu-quick", overrides={"output_dir": str(tmp_path), "max_steps": 60, "eval_steps": 60,
                                                     "data": {"data": str(IMDB), "train_per_class": 480,
                                                              "validation_per_class": 100, "test_per_class": 100}})
    metrics = json.loads((train(cfg) / "metrics.json").read_text())
    assert metrics["validation"]["accuracy_ci95"][0] > 0.6  # clearly above chance, not just a lucky draw


def test_seed_nlptown_preset_trains_a_five_star_stand_in(tiny_run, tmp_path, caplog):
    """The seed document's recipe with a tiny 5-label model in place of the Hub's nlptown weights."""
    _, _, data = tiny_run
    stars = {i: f"{i + 1} star{'s' if i else ''}" for i in range(5)}
    stand_in = tiny_bert(tmp_path / "nlptown-stand-in", num_labels=5, id2label=stars)
    assert load_config(preset="seed-nlptown").model == "nlptown/bert-base-multilingual-uncased-sentiment"
    cfg = load_config(preset="seed-nlptown", overrides={"model": str(stand_in), "output_dir": str(tmp_path),
                                                        "max_steps": 2, "max_length": 64,
                                                        "data": {"data": str(data), "train_per_class": 20,
                                                                 "validation_size": 0.2}})
    metrics = json.loads((train(cfg) / "metrics.json").read_text())
    assert "5-label head" in caplog.text and metrics["train"]["steps"] == 2


def test_results_do_not_depend_on_rng_use_before_training(tiny_run, tmp_path):
    import torch

    _, _, data = tiny_run
    stand_in = tiny_bert(tmp_path / "five-labels", num_labels=5)  # its head is re-initialised from the RNG
    losses = []
    for name in ("first", "second"):
        # what another stage (a baseline loading a model) might have consumed
        torch.rand(1000 if name == "second" else 7)
        cfg = tiny_config(stand_in, data, tmp_path / "runs", name=name)
        losses.append(json.loads((train(cfg) / "metrics.json").read_text())["test"]["log_loss"])
    assert losses[0] == pytest.approx(losses[1], abs=1e-7)


def test_a_second_run_of_the_same_name_is_refused_while_the_first_holds_the_lock(tiny_run, tmp_path):
    import fcntl

    _, cfg, data = tiny_run
    other = tiny_config(cfg.model, data, tmp_path, name="busy")
    with (tmp_path / ".busy.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SentituneError, match="another sentitune process is training this run"):
            train(other)
    assert not (tmp_path / ".busy.partial").exists() and not (tmp_path / "busy").exists()


def test_resume_skips_a_checkpoint_without_its_state(tmp_path):
    from sentitune.training.train import last_complete_checkpoint

    for step, complete in ((4, True), (8, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path).endswith("checkpoint-4")


def test_checkpoint_last_keeps_the_end_of_the_schedule_and_still_scores_validation(tiny_run, tmp_path):
    _, _, data = tiny_run
    no_dropout = {"dropout": 0.0, "attention_dropout": 0.0}  # an evaluation draws from the RNG dropout uses
    cfg = tiny_config(tiny_run[1].model, data, tmp_path, name="last", checkpoint="last", early_stopping_patience=1,
                      early_stopping_from=0.0, **no_dropout)
    run_dir = train(cfg)
    trained = json.loads((run_dir / "metrics.json").read_text())["train"]
    evaluated = [row["step"] for row in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())
                 if "eval_f1" in row]
    assert (trained["steps"], trained["best_step"], trained["checkpoint"]) == (8, 8, "last")
    assert evaluated == [4, 8]  # no early stopping, validation scored at every evaluation
    once = train(tiny_config(tiny_run[1].model, data, tmp_path, name="once", eval_steps=10**9,
                             early_stopping_patience=0, **no_dropout))
    scores = [pd.read_parquet(run / "predictions.parquet")["prob_1"].to_numpy() for run in (run_dir, once)]
    np.testing.assert_array_equal(*scores)  # the same weights as one evaluation at the end
