"""Attention kernels at MiniLM's shapes: SDPA (CPU flash kernel) against sentitune's bf16 matmul attention and
`auto`.

    flock /tmp/sentitune-cpu.lock python benchmarks/attention_kernels.py

One layer's attention (batch 16, 12 heads, head dim 32) at 256 and 512 tokens, in bf16, with and without a
padding mask: forward + backward (training) and forward only (inference), best of 6 after 2 warm-ups. Also
the error of each kernel's bf16 output against fp32 SDPA. Prints the table and the speed-ups last.

On a CPU without native bf16 (AVX2 only, or ATEN_CPU_CAPABILITY=avx2) there is nothing to compare: the runtime
trains and predicts in fp32 there, where `attention: auto` is SDPA, and emulated bf16 would take hours; the
script prints the machine and says so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import torch
import torch.nn.functional as F

from sentitune.models import attention
from sentitune.models.attention import cpu_bf16_attention

BATCH, HEADS, HEAD_DIM = 16, 12, 32
MODULE = SimpleNamespace(training=True, is_causal=False)


def sdpa(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def auto(q, k, v, mask):
    """What `attention: auto` runs (the matmul kernel up to MATMUL_ATTENTION_MAX_TOKENS, SDPA above)."""
    return cpu_bf16_attention(MODULE, q, k, v, mask)[0].transpose(1, 2)  # back to SDPA's [batch, heads, seq, dim]


def matmul(q, k, v, mask):
    """The matmul kernel at any length (the threshold lifted), to show where it stops paying."""
    limit, attention.MATMUL_ATTENTION_MAX_TOKENS = attention.MATMUL_ATTENTION_MAX_TOKENS, 10**9
    try:
        return auto(q, k, v, mask)
    finally:
        attention.MATMUL_ATTENTION_MAX_TOKENS = limit


def best_ms(fn, length: int, mask, backward: bool) -> float:
    q, k, v = (torch.randn(BATCH, HEADS, length, HEAD_DIM, dtype=torch.bfloat16, requires_grad=backward)
               for _ in range(3))
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
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    torch.manual_seed(0)
    print(common.machine())
    if not common.native_bf16():
        print(f"bf16 attention kernels: {common.NO_BF16} (sentitune runs fp32 here, where `attention: auto` is SDPA); "
              "skipped")
        return
    rows = []
    for length in (256, 512):
        for masked in (False, True):
            mask = padding_mask(length) if masked else None
            for backward in (True, False):
                row = {"tokens": length, "mask": "padding" if masked else "none",
                       "pass": "fwd+bwd" if backward else "fwd"}
                row["sdpa_ms"] = best_ms(sdpa, length, mask, backward)
                row["matmul_ms"] = best_ms(matmul, length, mask, backward)
                row["auto_ms"] = best_ms(auto, length, mask, backward)
                row["matmul_speedup"] = row["sdpa_ms"] / row["matmul_ms"]
                row["auto_speedup"] = row["sdpa_ms"] / row["auto_ms"]
                rows.append(row)
    print(common.markdown_table(rows, ["tokens", "mask", "pass", "sdpa_ms", "matmul_ms", "auto_ms", "matmul_speedup",
                                       "auto_speedup"]))
    print(f"mean abs error vs fp32 SDPA (256 tokens): sdpa bf16 {max_error(sdpa, 256):.4f}, "
          f"matmul bf16 {max_error(matmul, 256):.4f}")
    short = [r["matmul_speedup"] for r in rows if r["pass"] == "fwd+bwd" and r["tokens"] == 256]
    long_ = [r["matmul_speedup"] for r in rows if r["pass"] == "fwd+bwd" and r["tokens"] == 512]
    print(f"matmul kernel vs SDPA, forward+backward: {min(short):.2f}x-{max(short):.2f}x at 256 tokens, "
          f"{min(long_):.2f}x-{max(long_):.2f}x at 512 (auto uses it up to {attention.MATMUL_ATTENTION_MAX_TOKENS})")


if __name__ == "__main__":
    main()
