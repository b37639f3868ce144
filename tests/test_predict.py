"""Batch prediction: input order kept, same answer in any batch size, window averaging, every class's probability."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_bert

from sentitune.core.errors import SentituneError
from sentitune.core.machine import Runtime
from sentitune.core.metrics import sigmoid
from sentitune.inference.predict import PAD_MULTIPLE, SentimentModel, _padded, label_decision, logits_for_ids

FP32 = Runtime.resolve("fp32")


def test_order_and_batch_size_do_not_change_answers(tiny_model):
    model = SentimentModel.from_pretrained(tiny_model, runtime=FP32)
    texts = ["short", "a much longer review " * 20, "medium length text here", "x " * 90]
    small = model.score(texts, batch_size=1)
    assert np.allclose(small.probs, model.score(texts, batch_size=64).probs, atol=1e-5)
    assert np.allclose(model.score(texts[::-1], batch_size=3).probs[::-1], small.probs, atol=1e-5)
    assert small.n_tokens[1] > small.n_tokens[0] and np.allclose(small.probs.sum(1), 1)


def test_batches_pad_to_a_multiple_of_8_within_the_model_positions(tiny_model):
    """Few distinct widths keep torch's per-shape kernel cache small over a long job; the padding is masked."""
    import torch

    cpu = torch.device("cpu")
    assert PAD_MULTIPLE == 8
    assert _padded([[5, 6, 7], [8]], 0, cpu, 8, 512)["input_ids"].shape == (2, 8)
    assert _padded([[5] * 100], 0, cpu, 8, 100)["input_ids"].shape == (1, 100)  # never past the positions
    assert _padded([[5] * 3], 0, cpu)["input_ids"].shape == (1, 3)
    model = SentimentModel.from_pretrained(tiny_model, runtime=FP32)
    ids = [[101] + [2000 + i] * n + [102] for i, n in enumerate((1, 7, 13, 30))]
    batched = logits_for_ids(model.model, ids, 0, batch_size=4, runtime=FP32)
    alone = np.concatenate([logits_for_ids(model.model, [row], 0, batch_size=1, runtime=FP32) for row in ids])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_windows_equal_plain_prediction_for_short_texts_and_cover_long_ones(tiny_model):
    model = SentimentModel.from_pretrained(tiny_model, runtime=FP32)
    short = ["a fine film", "not good at all"]
    plain = model.score(short, max_length=64).probs
    assert np.allclose(plain, model.score(short, max_length=64, windows=True).probs, atol=1e-5)
    scored = model.score(["great " * 100 + "awful " * 100], max_length=64, windows=True)
    assert scored.n_tokens[0] == 202 and np.isfinite(scored.logits).all()


def test_three_class_model_returns_every_class(tmp_path):
    names = {0: "negative", 1: "neutral", 2: "positive"}
    model = SentimentModel.from_pretrained(tiny_bert(tmp_path / "three", num_labels=3, id2label=names), runtime=FP32)
    out = model.predict(["fine", "awful"])
    assert [set(o["scores"]) for o in out] == [{"negative", "neutral", "positive"}] * 2
    assert all(o["score"] == max(o["scores"].values()) and o["label"] == max(o["scores"], key=o["scores"].get)
               for o in out)
    assert model.predict("one text")["label"] in names.values()


def test_label_decision_and_bad_batch_size(tiny_model):
    assert label_decision(np.array([0.2, 0.5, 0.3]), ["a", "b", "c"]) == {
        "label": "b", "score": 0.5, "scores": {"a": 0.2, "b": 0.5, "c": 0.3}}
    with pytest.raises(SentituneError, match="--batch-size -1"):
        SentimentModel.from_pretrained(tiny_model, runtime=FP32).predict(["x"], batch_size=-1)


def test_sigmoid_is_stable_for_large_margins():
    assert np.allclose(sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])
