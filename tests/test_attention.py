"""models: the CPU bf16 attention kernel agrees with SDPA, respects padding, and never leaks into saved configs."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import padded_batch

from sentitune.core.errors import SentituneError
from sentitune.models.attention import ATTENTION
from sentitune.models.loading import load_classifier


def _pair(tiny_model):
    fast = load_classifier(str(tiny_model), dropout=0.0, attention_dropout=0.0, attention="auto").eval()
    sdpa = load_classifier(str(tiny_model), dropout=0.0, attention_dropout=0.0, attention="sdpa").eval()
    sdpa.load_state_dict(fast.state_dict())
    return fast, sdpa


def test_auto_attention_is_registered_and_matches_sdpa(tiny_model):
    fast, sdpa = _pair(tiny_model)
    assert fast.config._attn_implementation == ATTENTION and sdpa.config._attn_implementation == "sdpa"
    ids, mask = padded_batch()
    with torch.no_grad():
        assert torch.equal(fast(input_ids=ids, attention_mask=mask).logits,
                           sdpa(input_ids=ids, attention_mask=mask).logits)  # fp32: SDPA itself
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a = fast(input_ids=ids, attention_mask=mask).logits.float()
            b = sdpa(input_ids=ids, attention_mask=mask).logits.float()
    assert torch.allclose(a, b, atol=0.05)


def test_bf16_attention_ignores_padding(tiny_model):
    """A padded row gives the same logits as the same review alone, unpadded."""
    fast, _ = _pair(tiny_model)
    fast.to(torch.bfloat16)
    ids, mask = padded_batch()
    with torch.no_grad():
        batched = fast(input_ids=ids, attention_mask=mask).logits.float()
        alone = fast(input_ids=ids[1:2, :15], attention_mask=mask[1:2, :15]).logits.float()
    assert torch.allclose(batched[1], alone[0], atol=0.03)


def test_bf16_attention_gradients_match_sdpa(tiny_model):
    fast, sdpa = _pair(tiny_model)
    ids, mask = padded_batch()
    grads = []
    for model in (fast, sdpa):
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss
        loss.backward()
        grads.append(model.bert.encoder.layer[0].attention.self.query.weight.grad)
    cosine = torch.nn.functional.cosine_similarity(grads[0].flatten(), grads[1].flatten(), dim=0)
    assert cosine > 0.99


def test_saved_model_loads_without_sentitune(tiny_model, tmp_path):
    fast, _ = _pair(tiny_model)
    fast.save_pretrained(tmp_path)
    assert ATTENTION not in json.dumps(json.loads((tmp_path / "config.json").read_text()))
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(tmp_path).config._attn_implementation in {"sdpa", "eager"}


def test_unknown_attention_is_a_one_line_error(tiny_model):
    with pytest.raises(SentituneError, match="--attention flash: use auto, sdpa or eager"):  # the kernel's own check
        load_classifier(str(tiny_model), attention="flash")


def test_long_inputs_go_to_sdpa():
    """Above 256 tokens SDPA's flash kernel is faster on CPU: the kernel hands over, with identical output."""
    from types import SimpleNamespace

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from sentitune.models.attention import MATMUL_ATTENTION_MAX_TOKENS, cpu_bf16_attention

    module = SimpleNamespace(training=False, is_causal=False)
    for length, same in ((MATMUL_ATTENTION_MAX_TOKENS + 8, True), (64, False)):
        q, k, v = (torch.randn(2, 2, length, 8, dtype=torch.bfloat16) for _ in range(3))
        ours = cpu_bf16_attention(module, q, k, v, None)[0]
        sdpa = sdpa_attention_forward(module, q, k, v, None)[0]
        assert torch.equal(ours, sdpa) is same and torch.allclose(ours.float(), sdpa.float(), atol=0.05)
