"""Attention kernels at MiniLM's shapes: SDPA (CPU flash kernel) against sentitune's bf16 matmul attention.

    flock /tmp/sentitune-cpu.lock python benchmarks/attention_kernels.py

One layer's attention (batch 16, 12 heads, head dim 32) at 256 and 512 tokens, in bf16, with and without a
padding mask: forward + backward (training) and forward only (inference), best of 6 after 2 warm-ups. Also
the error of each kernel's bf16 output against fp32 SDPA. Prints the table and the speed-ups last.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
import torch.nn.functional as F

import common
from sentitune.models import cpu_bf16_attention

BATCH, HEADS, HEAD_DIM = 16, 12, 32
MODULE = SimpleNamespace(training=True, is_causal=False)


def sdpa(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def sentitune(q, k, v, mask):
    # transformers passes [batch, seq, heads, dim] out; compare in SDPA's layout
    return cpu_bf16_attention(MODULE, q, k, v, mask)[0].transpose(1, 2)


def best_ms(fn, length: int, mask, backward: bool) -> float:
    q, k, v = (torch.randn(BATCH, HEADS, length, HEAD_DIM, dtype=torch.bfloat16, requires_grad=backward) for _ in range(3))
    times = []
    for _ in range(8):
        start = time.perf_counter()
        if backward:
            fn(q, k, v, mask).sum().backward()
        else:
            with torch.inference_mode():
                fn(q, k, v, mask)
        times.append(time.perf_counter() - start)
    return 1000 * min(times[2:])


def padding_mask(length: int) -> torch.Tensor:
    """Keep-mask (True = attend) as transformers' SDPA mask builder makes it: a quarter of the rows padded by 20%."""
    mask = torch.ones(BATCH, 1, length, length, dtype=torch.bool)
    mask[: BATCH // 4, ..., int(length * 0.8):] = False
    return mask


def max_error(fn, length: int) -> float:
    q, k, v = (2 * torch.randn(BATCH, HEADS, length, HEAD_DIM) for _ in range(3))
    mask = padding_mask(length)
    exact = sdpa(q, k, v, mask)
    return float((fn(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask).float() - exact).abs().mean())


def main() -> None:
    torch.manual_seed(0)
    print(common.machine())
    rows = []
    for length in (256, 512):
        for masked in (False, True):
            mask = padding_mask(length) if masked else None
            for backward in (True, False):
                row = {"tokens": length, "mask": "padding" if masked else "none", "pass": "fwd+bwd" if backward else "fwd"}
                row["sdpa_ms"] = best_ms(sdpa, length, mask, backward)
                row["sentitune_ms"] = best_ms(sentitune, length, mask, backward)
                row["speedup"] = row["sdpa_ms"] / row["sentitune_ms"]
                rows.append(row)
    print(common.markdown_table(rows, ["tokens", "mask", "pass", "sdpa_ms", "sentitune_ms", "speedup"]))
    print(f"mean abs error vs fp32 SDPA (256 tokens): sdpa bf16 {max_error(sdpa, 256):.4f}, sentitune bf16 {max_error(sentitune, 256):.4f}")
    train = [r["speedup"] for r in rows if r["pass"] == "fwd+bwd"]
    print(f"speed-up of sentitune's kernel, forward+backward: {min(train):.2f}x-{max(train):.2f}x")


if __name__ == "__main__":
    main()
