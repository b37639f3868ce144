"""inference.batch_size: the eval batch size measured on this machine (predict, batch scoring), out-of-memory sizes
marked as not fitting, and the one-line errors of `--batch-size`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sentitune.core.errors import SentituneError
from sentitune.core.machine import Runtime
from sentitune.inference.batch import score_file
from sentitune.inference.batch_size import EVAL_SIZES, best_size, fastest_batch_size, fastest_eval_batch, measured
from sentitune.inference.predict import SentimentModel

TEXTS = [f"review number {i} " + "quite good " * (i % 17) for i in range(300)]


def test_the_sweep_times_each_size_up_to_what_the_texts_fill_and_picks_the_fastest(tiny_model):
    model = SentimentModel.from_pretrained(tiny_model, runtime=Runtime.resolve("fp32"))
    size, rows = fastest_batch_size(model, TEXTS)
    assert [r["batch_size"] for r in rows] == list(EVAL_SIZES)  # 300 texts fill every size up to 256
    assert size == best_size(rows) == max(rows, key=lambda r: r["examples_per_s"])["batch_size"]
    assert all(r["fits"] and r["examples_per_s"] > 0 for r in rows)
    few = fastest_eval_batch(model.model_at(), [[101, 102]] * 20, 0, model.runtime, 10**6)[0]
    assert [r["batch_size"] for r in few] == [8, 16, 32]  # 32 already holds all 20: larger ones measure nothing new


def test_an_out_of_memory_size_does_not_fit_and_other_errors_surface():
    def full():
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    row = measured({"batch_size": 64, "fits": True, "reason": None}, full, torch.device("cpu"), 10**6)
    assert not row["fits"] and row["reason"] == "out of memory" and best_size([row]) is None
    with pytest.raises(ValueError):
        measured({"batch_size": 8, "fits": True, "reason": None}, lambda: int("x"), torch.device("cpu"), 10**6)
    over = measured({"batch_size": 8, "fits": True, "reason": None}, lambda: 10.0, torch.device("cpu"), 1.0)
    assert not over["fits"] and "over the 1 MB limit" in over["reason"]


def test_predict_and_batch_scoring_take_auto(tiny_model, tmp_path):
    from test_cli import sentitune

    result = sentitune("predict", str(tiny_model), *TEXTS[:40], "--batch-size", "auto")
    assert result.returncode == 0 and len(result.stdout.strip().splitlines()) == 40
    assert "--batch-size auto:" in result.stderr
    pd.DataFrame({"text": TEXTS}).to_parquet(tmp_path / "in.parquet")
    summary = score_file(tiny_model, tmp_path / "in.parquet", tmp_path / "out.parquet", batch_size="auto",
                         progress=False)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert summary["rows"] == len(out) == 300 and np.allclose(out.filter(like="prob_").sum(1), 1, atol=1e-5)
    for bad in ("fast", "0"):
        bad_result = sentitune("predict", str(tiny_model), "nice", "--batch-size", bad)
        assert bad_result.returncode == 2 and "--batch-size" in bad_result.stderr
        assert len(bad_result.stderr.strip().splitlines()) == 1


def test_no_size_that_fits_is_one_line(tiny_model, monkeypatch):
    import sentitune.inference.batch_size as batch_size

    model = SentimentModel.from_pretrained(tiny_model, runtime=Runtime.resolve("fp32"))
    monkeypatch.setattr(batch_size, "memory_mb", lambda device: 10.0**9)  # every size "uses" a petabyte
    with pytest.raises(SentituneError, match="--batch-size auto: no batch size fits on this CPU"):
        fastest_batch_size(model, TEXTS[:20])
