"""Batch prediction: input order kept, same answer in any batch size, window averaging for long texts."""

from __future__ import annotations

import numpy as np

from sentitune.predict import SentimentModel, sigmoid


def test_order_and_batch_size_do_not_change_answers(tiny_model):
    model = SentimentModel.from_pretrained(tiny_model)
    texts = ["short", "a much longer review " * 20, "medium length text here", "x " * 90]
    small, _, n_small = model.predict_proba(texts, batch_size=1, precision="fp32")
    large, _, _ = model.predict_proba(texts, batch_size=64, precision="fp32")
    assert np.allclose(small, large, atol=1e-5)
    reversed_, _, _ = model.predict_proba(texts[::-1], batch_size=3, precision="fp32")
    assert np.allclose(reversed_[::-1], small, atol=1e-5)
    assert n_small[1] > n_small[0]


def test_windows_equal_plain_prediction_for_short_texts_and_cover_long_ones(tiny_model):
    model = SentimentModel.from_pretrained(tiny_model)
    short = ["a fine film", "not good at all"]
    plain, _, _ = model.predict_proba(short, max_length=64, precision="fp32")
    windowed, _, _ = model.predict_proba(short, max_length=64, precision="fp32", windows=True)
    assert np.allclose(plain, windowed, atol=1e-5)
    long_text = ["great " * 100 + "awful " * 100]
    _, margin, n_tokens = model.predict_proba(long_text, max_length=64, precision="fp32", windows=True)
    assert n_tokens[0] == 202 and np.isfinite(margin[0])


def test_sigmoid_is_stable_for_large_margins():
    assert np.allclose(sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])
