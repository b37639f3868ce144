"""Hyperparameter search on a small random BERT: study folder, pruning, resume, flat memory, shared storage."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import synthetic_reviews

from sentitune.core.errors import SentituneError
from sentitune.run.config import load_config
from sentitune.training.tune import DEFAULT_SPACE, check_space, load_space, tune

SPACE = {"learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
         "batch_size": {"type": "categorical", "choices": [8, 16]}}


def small_bert(path: Path) -> Path:
    """A random BERT big enough (~8M parameters, ~130 MB with AdamW state) that keeping one trial's model
    alive would show in RSS, small enough to train a few steps in a second."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from sentitune.models.loading import default_model

    tokenizer = AutoTokenizer.from_pretrained(default_model())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=256, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=256, max_position_embeddings=128, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class PruneTrialOne(optuna.pruners.BasePruner):
    """Deterministic pruning for the test: trial 1 is stopped at its first report."""

    def prune(self, study, trial) -> bool:
        return trial.number == 1


@pytest.fixture(scope="module")
def study_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    data = root / "data"
    data.mkdir()
    synthetic_reviews(60, 0).to_parquet(data / "train.parquet")
    synthetic_reviews(30, 1).to_parquet(data / "test.parquet")
    cfg = load_config(overrides={"model": str(small_bert(root / "model")), "output_dir": str(root / "runs"),
                                 "max_steps": 6, "max_length": 64, "logging_steps": 2,
                                 "data": {"data": str(data), "validation_size": 0.2}})
    study = tune(root / "study", cfg, SPACE, n_trials=4, pruner=PruneTrialOne(), seed=0)
    return study, root / "study", cfg


def test_study_folder_holds_trials_best_config_summary_and_plots(study_setup):
    study, folder, cfg = study_setup
    states = {t.number: t.state.name for t in study.trials}
    assert states == {0: "COMPLETE", 1: "PRUNED", 2: "COMPLETE", 3: "COMPLETE"}
    assert (folder / "study.db").is_file()
    for n in range(4):
        assert {p.name for p in (folder / "trials" / str(n)).iterdir()} == {"config.yaml", "metrics.json", "log.jsonl"}
    assert not list(folder.rglob("*.safetensors")) and not list(folder.rglob("checkpoint-*"))
    pruned = json.loads((folder / "trials" / "1" / "metrics.json").read_text())
    assert pruned["state"] == "pruned" and len(pruned["evaluations"]) == 1
    done = json.loads((folder / "trials" / "0" / "metrics.json").read_text())
    assert (done["metric"] == "f1"
            and done["best_value"] == study.trials[0].value == max(e["value"] for e in done["evaluations"]))
    # every trial evaluates at the same numbers of examples whatever its batch size, so the pruner can compare them
    firsts = {min(t.intermediate_values) for t in study.trials}
    assert len(firsts) == 1 and firsts.pop() % 16 == 0
    best = load_config(folder / "best.yaml")
    assert (best.learning_rate == study.best_params["learning_rate"]
            and best.batch_size == study.best_params["batch_size"])
    assert best.name == "study-best" and best.output_dir == cfg.output_dir and best.early_stopping_patience == 0
    # the final fit trains on train + validation, so it keeps its last checkpoint: validation cannot pick one
    assert best.data == dataclasses.replace(cfg.data, validation_in_train=True)
    assert best.checkpoint == "last" and not best.keeps_best
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["counts"] == {"complete": 3, "pruned": 1} and summary["best"]["number"] == study.best_trial.number
    assert summary["default"] == {"learning_rate": cfg.learning_rate, "batch_size": cfg.batch_size}
    for name in ("history", "slice", "intermediate", "importances"):
        assert (folder / "plots" / f"{name}.png").stat().st_size > 5000, summary["plots"][name]


def test_memory_does_not_grow_across_trials(study_setup):
    study, _, _ = study_setup
    rss = [t.user_attrs["rss_mb"] for t in study.trials]
    # one leaked trial (model + gradients + AdamW state) would add ~130 MB
    assert max(rss[1:]) - rss[1] < 60, rss


def test_rerun_resumes_the_study_and_refuses_another_setup(study_setup):
    study, folder, cfg = study_setup
    resumed = tune(folder, cfg, SPACE, n_trials=5, pruner="median", seed=0)
    assert [t.number for t in resumed.trials] == [0, 1, 2, 3, 4]
    assert tune(folder, cfg, SPACE, n_trials=5).trials[-1].number == 4  # budget met: nothing more runs
    sessions = json.loads((folder / "summary.json").read_text())["sessions"]
    assert [(s["finished_before"], s["finished_after"]) for s in sessions] == [(0, 4), (4, 5), (5, 5)]
    with pytest.raises(SentituneError, match="different search space"):
        tune(folder, cfg, DEFAULT_SPACE, n_trials=6)


def test_space_is_checked_and_loaded(tmp_path):
    assert check_space(DEFAULT_SPACE) is DEFAULT_SPACE
    for bad, message in [({"nope": {"type": "float", "low": 0, "high": 1}}, "not a tunable"),
                         ({"data": {"type": "float", "low": 0, "high": 1}}, "not a tunable"),
                         ({"learning_rate": {"type": "float", "low": 1, "high": 0}}, "low <= high"),
                         ({"learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}}, "log-scaled"),
                         ({"batch_size": {"type": "categorical"}}, "choices"),
                         ({"epochs": {"low": 1, "high": 2}}, "needs type"), ({}, "non-empty")]:
        with pytest.raises(SentituneError, match=message):
            check_space(bad)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"search_space": SPACE}))
    assert load_space(path) == SPACE and load_space(None) == DEFAULT_SPACE
    with pytest.raises(SentituneError, match="file not found"):
        load_space(tmp_path / "missing.yaml")


WORKER = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    import optuna
    from sentitune.training.tune import open_study, run_budget

    url, n_trials, kill_at, barrier, n_workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
    study = open_study("toy", url, heartbeat_s=1)
    (barrier / str(os.getpid())).touch()
    while len(list(barrier.iterdir())) < n_workers:  # start together, however slowly Python imports
        time.sleep(0.05)
    study.sampler = optuna.samplers.RandomSampler(seed=os.getpid())

    def objective(trial):
        x = trial.suggest_float("x", -1, 1)
        trial.set_user_attr("pid", os.getpid())
        time.sleep(0.3)
        if trial.number == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return x * x

    run_budget(study, objective, n_trials)
""")  # noqa: E501


def worker(url: str, n_trials: int, barrier: Path, n_workers: int = 1, kill_at: int = -1) -> subprocess.Popen:
    """A process that joins the toy study at `url` once `n_workers` processes have reached `barrier`."""
    barrier.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", WORKER, url, str(n_trials), str(kill_at), str(barrier),
                             str(n_workers)],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def finished(proc: subprocess.Popen) -> int:
    """The worker's exit code, with its stderr shown when it failed."""
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return proc.returncode


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_workers_share_one_study(tmp_path, kind):
    url = f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else str(tmp_path / "study.log")
    procs = [worker(url, 12, tmp_path / "barrier", n_workers=2) for _ in range(2)]
    assert [finished(p) for p in procs] == [0, 0]
    from sentitune.training.tune import open_study

    trials = open_study("toy", url).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and sorted(numbers) == list(range(len(trials)))
    assert all(t.state.name == "COMPLETE" for t in trials) and 12 <= len(trials) <= 13
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both workers contributed


def test_killed_worker_resumes_and_retries_the_killed_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    killed = worker(url, 5, tmp_path / "first", kill_at=2)
    killed.communicate(timeout=120)
    assert killed.returncode == -9
    assert finished(worker(url, 5, tmp_path / "second")) == 0  # starting Python takes longer than the 2 s grace period
    from sentitune.training.tune import open_study

    trials = open_study("toy", url).trials
    assert trials[2].state.name == "FAIL"
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == 2]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE" and retry[0].params == trials[2].params
    assert (sum(t.state.name == "COMPLETE" for t in trials) == 5
            and [t.number for t in trials] == list(range(len(trials))))


@pytest.mark.parametrize("space, match", [
    ({"learning_rate": {"type": "float", "low": -1e-4, "high": 1e-4}}, "learning_rate may draw -0.0001"),
    ({"batch_size": {"type": "categorical", "choices": [0, 8]}}, "batch_size may draw 0"),
    ({"dropout": {"type": "float", "low": 0.0, "high": 1.5}}, "dropout may draw 1.5"),
])
def test_spaces_that_would_crash_a_trial_are_refused_up_front(space, match):
    with pytest.raises(SentituneError, match=match):
        check_space(space)


def test_yaml_exponent_bounds_are_numbers(tmp_path):
    (tmp_path / "s.yaml").write_text("learning_rate: {type: float, low: 1e-5, high: 1e-4, log: true}\n")
    assert load_space(tmp_path / "s.yaml")["learning_rate"]["low"] == 1e-5
