"""The CPU bf16 attention kernel (`--attention auto`), registered through transformers' AttentionInterface."""

from __future__ import annotations

import torch

from ..core.errors import SentituneError

ATTENTION = "sentitune_cpu_bf16"
MATMUL_ATTENTION_MAX_TOKENS = 256  # measured faster than SDPA at 256 tokens, slower at 512


def cpu_bf16_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention as two bf16 matmuls and a softmax, for bf16 on CPU up to 256 tokens; SDPA everywhere else.

    At MiniLM's shapes (head dim 32, 256 tokens) this is 1.3-2.4x faster forward+backward than SDPA's CPU flash
    kernel, which took ~40% of a training step; at 512 tokens the flash kernel wins (benchmarks/attention_kernels.py).
    The scores are rounded to bf16 before the softmax, as eager attention under bf16 autocast does on a GPU."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.device.type != "cpu" or query.dtype != torch.bfloat16 or getattr(module, "is_causal", False) \
            or query.shape[1] != key.shape[1] or key.shape[2] > MATMUL_ATTENTION_MAX_TOKENS:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    scores = torch.matmul(query * (scaling or query.shape[-1] ** -0.5), key.transpose(-1, -2))
    if attention_mask is not None:  # boolean (keep = True) from transformers' sdpa mask builder
        if attention_mask.dtype == torch.bool:
            attention_mask = torch.zeros((), dtype=scores.dtype).masked_fill(~attention_mask,
                                                                             torch.finfo(scores.dtype).min)
        scores = scores + attention_mask.to(scores.dtype)
    weights = torch.nn.functional.dropout(torch.softmax(scores, dim=-1), p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION, cpu_bf16_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)


def attn_implementation(attention: str) -> str | None:
    """transformers' attn_implementation for sentitune's `attention` setting (auto, sdpa or eager)."""
    if attention not in {"auto", "sdpa", "eager"}:
        raise SentituneError(f"--attention {attention}: use auto, sdpa or eager.")
    if attention == "auto":
        _register_attention()
        return ATTENTION
    return attention
