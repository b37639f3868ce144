"""Achieved model FLOP/s of sentitune's training step against this machine's measured matmul peaks.

    flock /tmp/sentitune-cpu.lock python benchmarks/flops.py                      # 320 reviews
    flock /tmp/sentitune-cpu.lock python benchmarks/flops.py --train-examples 800 --preset cpu-full

Peaks: best of 5 square 4096^3 matmuls in fp32 and in bf16 (torch.mm, all threads), plus the bf16 rate
of the model's own projection shapes (4096 tokens x 384 -> 1536 and back), the ceiling a MiniLM-sized
step can hope for. On a CPU without native bf16 the two bf16 figures are skipped ("n/a": emulated bf16 would
take over an hour) and the step, which then trains in fp32, is set against the fp32 peak. The step is
sentitune's own (train_arm.py: `sentitune.training.trainer`), labelled by the precision it ran at. Model FLOPs are
counted analytically (common.train_flops, checked here against torch's FlopCounterMode on one batch) over the
padded batches the step computed. Prints the shares last.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import torch


def shaped_gflops(tokens: int = 4096, d: int = 384, ff: int = 1536, repeats: int = 20) -> float:
    """bf16 GFLOP/s of the FFN projections of a MiniLM-sized layer (tokens x d x ff, both directions)."""
    x, w1, w2 = (torch.randn(*s, dtype=torch.bfloat16) for s in ((tokens, d), (d, ff), (ff, d)))
    torch.mm(torch.mm(x, w1), w2)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(torch.mm(x, w1), w2)
    return repeats * 2 * 2 * tokens * d * ff / (time.perf_counter() - start) / 1e9


def counter_check(model_name: str, batch: int = 2, width: int = 64) -> tuple[float, float]:
    """(analytic, FlopCounterMode) FLOPs of one forward + backward of the model on a random batch."""
    from torch.utils.flop_counter import FlopCounterMode

    from sentitune.core.labels import LabelScheme
    from sentitune.models.loading import load_classifier

    model = load_classifier(model_name, LabelScheme(("negative", "positive")))
    model.set_attn_implementation("eager")  # plain matmuls, which the counter sees
    ids = torch.randint(1000, 2000, (batch, width))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.sum().backward()
    return common.train_flops(model.config, batch, width), counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-examples", type=int, default=320)
    parser.add_argument("--preset", default="cpu-quick")
    parser.add_argument("--warmup-steps", type=int, default=3)
    args = parser.parse_args()
    from sentitune.run.config import load_config

    print(common.machine())
    cfg = load_config(preset=args.preset)
    analytic, counted = counter_check(cfg.model)
    print(f"FLOP count check (batch 2 x 64 tokens): analytic {analytic / 1e9:.3f} GFLOP, "
          f"FlopCounterMode {counted / 1e9:.3f} GFLOP")
    bf16 = common.native_bf16()
    peaks = {"fp32": common.matmul_gflops(torch.float32), "bf16": common.bf16_matmul_gflops(),
             "bf16 MiniLM shapes": shaped_gflops() if bf16 else None}
    spec = {"recipe": "sentitune", "preset": args.preset, "train_per_class": args.train_examples // 2,
            "max_steps": args.train_examples // cfg.batch_size, "warmup_steps": args.warmup_steps}
    step = common.run_json("train_arm.py", spec)
    arm = f"{args.preset}, {step['precision']}"
    rows = [{"figure": f"{name} matmul peak", "gflops": common.NO_BF16 if value is None else value}
            for name, value in peaks.items()]
    rows += [{"figure": f"training step ({arm}), padded batches", "gflops": step["gflops"]},
             {"figure": f"training step ({arm}), real tokens only", "gflops": step["useful_gflops"]}]
    print(common.markdown_table(rows, ["figure", "gflops"]))
    fp32_share = f"{step['gflops'] / peaks['fp32']:.1%} of the fp32 peak"
    if not bf16:
        print(f"training step ({step['precision']}): {step['gflops']:.0f} GFLOP/s at {step['examples_per_s']:.1f} "
              f"examples/s = {fp32_share}; bf16 peak {common.NO_BF16} (target >= 25% of bf16 peak: n/a)")
        return
    share = step["gflops"] / peaks["bf16"]
    print(f"training step ({step['precision']}): {step['gflops']:.0f} GFLOP/s at {step['examples_per_s']:.1f} "
          f"examples/s = {share:.1%} of the bf16 peak, {fp32_share}, "
          f"{step['gflops'] / peaks['bf16 MiniLM shapes']:.1%} of the bf16 rate at MiniLM shapes "
          f"(target >= 25% of bf16 peak: {'met' if share >= 0.25 else 'not met'})")


if __name__ == "__main__":
    main()
