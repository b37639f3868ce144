"""Inference runtime: the copy of a fine-tuned classifier that `predict` runs on a CPU.

`inference_copy(model)` returns a bf16 copy that computes only what the classifier reads: its last encoder
layer runs the attention output and feed-forward for the first token only (the head reads `[CLS]`/`<s>`; keys
and values still come from every token). Exact, and about 1/6 less work for a 6-layer model
(docs/benchmarks.md). The copy is for inference only; training never uses it.
"""

from __future__ import annotations

import copy
import sys

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

FIRST_TOKEN_MODELS = {"bert", "roberta", "xlm-roberta", "camembert"}  # heads that read hidden_states[:, 0]


class FirstTokenLayer(torch.nn.Module):
    """A BERT-style encoder layer computed for the first position only (keys and values still see every token)."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
        attn, first = self.layer.attention.self, hidden_states[:, :1]

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(x.shape[0], x.shape[1], -1, attn.attention_head_size).transpose(1, 2)

        if attention_mask is not None and attention_mask.dim() == 4:  # the first query's row
            attention_mask = attention_mask[..., :1, :]
        eager = sys.modules[type(attn).__module__].eager_attention_forward
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager)
        out, _ = attend(attn, heads(attn.query(first)), heads(attn.key(hidden_states)),
                        heads(attn.value(hidden_states)), attention_mask, dropout=0.0, scaling=attn.scaling)
        out = self.layer.attention.output(out.reshape(first.shape[0], 1, -1), first)
        return self.layer.feed_forward_chunk(out)


def first_token_only(model: torch.nn.Module) -> torch.nn.Module:
    """Make the last encoder layer compute the first token only, where the head reads nothing else; in place."""
    config = model.config
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if config.model_type not in FIRST_TOKEN_MODELS or layers is None or config.is_decoder \
            or not hasattr(layers[-1], "feed_forward_chunk"):
        return model
    layers[-1] = FirstTokenLayer(layers[-1])
    return model


def inference_copy(model: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
    """A copy of `model` at `dtype` for inference, its last layer computing the first token only where it can."""
    return first_token_only(copy.deepcopy(model).to(dtype).eval())
