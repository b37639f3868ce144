"""runtime: the inference copy computes what the full model computes (the first-token last layer exactly)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import padded_batch

from sentitune.core.machine import Runtime
from sentitune.inference.predict import SentimentModel
from sentitune.models import runtime
from sentitune.models.loading import load_classifier


def _logits(model, ids, mask):
    with torch.inference_mode():
        return model(input_ids=ids, attention_mask=mask).logits.float()


@pytest.mark.parametrize("attention", ["auto", "sdpa", "eager"])
def test_first_token_layer_is_exact(tiny_model, attention):
    model = load_classifier(str(tiny_model), dropout=0.0, attention_dropout=0.0, attention=attention).eval()
    fast = runtime.first_token_only(copy.deepcopy(model))
    assert isinstance(fast.bert.encoder.layer[-1], runtime.FirstTokenLayer)
    ids, mask = padded_batch()
    assert torch.allclose(_logits(fast, ids, mask), _logits(model, ids, mask), atol=1e-5)


def test_first_token_layer_roberta(tmp_path):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(vocab_size=6000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64, num_labels=2)
    model = RobertaForSequenceClassification(config).eval()
    fast = runtime.first_token_only(copy.deepcopy(model))
    assert isinstance(fast.roberta.encoder.layer[-1], runtime.FirstTokenLayer)
    ids, mask = padded_batch()
    assert torch.allclose(_logits(fast, ids, mask), _logits(model, ids, mask), atol=1e-5)


def test_first_token_leaves_other_architectures_alone():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=2,
                                                                 hidden_dim=64))
    before = [type(m) for m in model.modules()]
    assert [type(m) for m in runtime.first_token_only(model).modules()] == before


def test_predict_uses_the_first_token_copy_in_bf16(tiny_model):
    model = SentimentModel.from_pretrained(tiny_model, runtime=Runtime.resolve("bf16"))
    fast = model.model_at()
    assert isinstance(fast.bert.encoder.layer[-1], runtime.FirstTokenLayer) and fast.dtype == torch.bfloat16
    assert not isinstance(model.model.bert.encoder.layer[-1], runtime.FirstTokenLayer)  # the loaded model is untouched
    texts = ["a wonderful, moving film", "dull and boring", "the plot was quite something " * 30]
    exact = SentimentModel.from_pretrained(tiny_model, runtime=Runtime.resolve("fp32")).score(texts).logits
    fast = SentimentModel.from_pretrained(tiny_model, runtime=Runtime.resolve("bf16")).score(texts).logits
    assert abs(fast - exact).max() < 0.05 * abs(exact).max() + 0.02
