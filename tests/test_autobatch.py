"""training.autobatch: `--batch-size auto` measures each micro-batch size on the run's own assembly, picks the
fastest that fits, keeps the effective batch, and records the sweep; an out-of-memory size is skipped."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch
from test_train import tiny_config
from transformers import TrainerCallback

from sentitune.core.errors import SentituneError
from sentitune.run.config import load_config
from sentitune.training.autobatch import (
    split_batch,
    train_candidates,
    tuned,
    tuned_eval_batch,
    tuned_train_batch,
)
from sentitune.training.train import train
from sentitune.training.trainer import prepare


class OutOfMemoryFrom(TrainerCallback):
    """An allocator failure at every micro-batch of `size` examples or more, as a full GPU raises it."""

    def __init__(self, size: int):
        self.size = size

    def on_step_begin(self, args, state, control, **kwargs):
        if args.per_device_train_batch_size >= self.size:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")


def auto_config(tiny_model, parquet_folder, tmp_path, **overrides):
    return tiny_config(tiny_model, parquet_folder, tmp_path / "runs", batch_size=8, gradient_accumulation=2,
                       **overrides)


def test_candidates_divide_the_effective_batch():
    assert train_candidates(16) == [2, 4, 8, 16]
    assert train_candidates(24) == [2, 4, 8, 24]
    assert train_candidates(1) == [1]


def test_a_trial_keeps_its_own_effective_batch_in_micro_batches_as_fast_as_measured():
    assert split_batch(32, fastest=8) == (8, 4)
    assert split_batch(16, fastest=16) == (16, 1)
    assert split_batch(8, fastest=16) == (8, 1)  # never above the batch the trial asks for
    assert split_batch(24, fastest=4) == (4, 6)


def test_auto_is_a_flag_that_keeps_the_size_before_it_as_the_effective_batch():
    cfg = load_config(preset="cpu-quick", overrides={"batch_size": "auto", "eval_batch_size": "auto"})
    assert cfg.auto_batch_size and cfg.auto_eval_batch_size and cfg.batch_size == 16
    for bad in ("fast", "-3"):
        with pytest.raises(SentituneError, match=f"--batch-size {bad}: use a positive whole number"):
            load_config(overrides={"batch_size": bad})
    with pytest.raises(SentituneError, match="batch-size = 0 is out of range"):
        load_config(overrides={"batch_size": 0})


@pytest.mark.parametrize("value", ["fast", "0", "-4"])
def test_a_bad_batch_size_on_the_command_line_is_one_line(tmp_path, value):
    from test_cli import sentitune

    result = sentitune("train", "--batch-size", value, "--output-dir", str(tmp_path))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "batch-size" in result.stderr and not list(tmp_path.iterdir())


def test_auto_picks_a_size_records_the_sweep_and_keeps_the_effective_batch(tiny_model, parquet_folder, tmp_path):
    cfg = auto_config(tiny_model, parquet_folder, tmp_path, auto_batch_size=True, auto_eval_batch_size=True)
    run = train(cfg)
    sweep = json.loads((run / "batch_sweep.json").read_text())
    rows = sweep["train"]["rows"]
    assert [r["batch_size"] for r in rows] == [2, 4, 8, 16] and all(r["examples_per_s"] > 0 for r in rows)
    best = max(rows, key=lambda r: r["examples_per_s"])
    assert sweep["train"]["chosen"] == best["batch_size"]
    saved = load_config(run / "config.yaml")
    assert saved.batch_size == best["batch_size"] and saved.batch_size * saved.gradient_accumulation == 16
    assert saved.eval_batch_size == sweep["eval"]["chosen"]
    # the report shows the sweep (a figure with the chosen size marked) and the card's training details name it
    from sentitune.evaluation.evaluate import evaluate_run
    from sentitune.reporting.card import write_model_card
    from sentitune.reporting.report import write_report

    evaluate_run(run)
    write_report(run)
    assert f"training batch {best['batch_size']} x {16 // best['batch_size']} accumulated" in \
        (run / "report.md").read_text()
    assert (run / "plots" / "batch_sweep.png").stat().st_size > 5000
    write_model_card(run)
    assert "Batch size (`--batch-size auto`): training batch" in (run / "model" / "README.md").read_text()

    # the same seed and the chosen sizes set by hand train the same model
    by_hand = tiny_config(tiny_model, parquet_folder, tmp_path / "runs", name="by-hand", batch_size=saved.batch_size,
                          gradient_accumulation=saved.gradient_accumulation, eval_batch_size=saved.eval_batch_size)
    a = pd.read_parquet(run / "predictions.parquet")
    b = pd.read_parquet(train(by_hand) / "predictions.parquet")
    pd.testing.assert_frame_equal(a.drop(columns=["n_tokens"]), b.drop(columns=["n_tokens"]))


def test_an_out_of_memory_size_ends_the_sweep_and_a_smaller_one_is_chosen(tiny_model, parquet_folder, tmp_path):
    cfg = auto_config(tiny_model, parquet_folder, tmp_path, auto_batch_size=True)
    prepared = prepare(cfg)
    tuned_cfg, sweep = tuned_train_batch(prepared.cfg, prepared, callbacks=[OutOfMemoryFrom(8)])
    assert [(r["batch_size"], r["fits"]) for r in sweep.rows] == [(2, True), (4, True), (8, False)]
    assert sweep.rows[-1]["reason"] == "out of memory" and tuned_cfg.batch_size in (2, 4)
    assert tuned_cfg.batch_size * tuned_cfg.gradient_accumulation == 16
    assert "did not fit: 8 (out of memory)" in sweep.sentence()
    with pytest.raises(SentituneError, match="--batch-size auto: no batch size fits on this CPU"):
        tuned_train_batch(prepared.cfg, prepared, callbacks=[OutOfMemoryFrom(1)])


def test_a_memory_limit_stops_the_sweep(tiny_model, parquet_folder, tmp_path):
    cfg = auto_config(tiny_model, parquet_folder, tmp_path, auto_batch_size=True, batch_memory_limit_gb=0.001)
    prepared = prepare(cfg)
    with pytest.raises(SentituneError, match="no batch size fits"):
        tuned_train_batch(prepared.cfg, prepared)


def test_the_eval_sweep_times_the_validation_texts(tiny_model, parquet_folder, tmp_path):
    prepared = prepare(auto_config(tiny_model, parquet_folder, tmp_path, auto_eval_batch_size=True))
    cfg, sweep = tuned_eval_batch(prepared.cfg, prepared)
    assert sweep.kind == "eval" and cfg.eval_batch_size == sweep.chosen and sweep.rows[0]["batch_size"] == 8
    again = tuned(dataclasses.replace(prepared, sweeps={"eval": sweep}))
    assert again.sweeps["eval"] is sweep  # a prepared object that carries a sweep is not measured again
