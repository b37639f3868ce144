"""Where a training step's time goes: torch.profiler over a few bf16 steps of the default model.

    flock /tmp/sentitune-cpu.lock python benchmarks/profile_step.py
    flock /tmp/sentitune-cpu.lock python benchmarks/profile_step.py --dropout 0.0 --attention-dropout 0.0 --batch-size 32

One step as the Trainer runs it (bf16 autocast forward, backward, fused AdamW, zero_grad) on a batch of
real IMDB reviews padded to their longest (256 tokens). Prints the top operators by self CPU time and,
last, the share of the step in matmuls, dropout's random masks and everything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from torch.profiler import ProfilerActivity, profile

import common
from sentitune.config import default_model
from sentitune.data import tokenize_splits
from sentitune.models import load_classifier, load_tokenizer, quiet_transformers

GROUPS = {  # operator-name fragments -> group, first match wins
    "matmul": ("mm", "addmm", "bmm", "linear", "matmul", "scaled_dot_product", "_flash_attention"),
    "dropout masks": ("bernoulli", "rand"),
    "optimizer": ("adam", "_foreach", "fused"),
}


def batch_of_reviews(batch_size: int, max_length: int) -> dict[str, torch.Tensor]:
    """`batch_size` long IMDB reviews, truncated to max_length (the worst-case, fully used batch)."""
    splits, _ = common.imdb_splits(batch_size, 4)
    tokenizer = load_tokenizer(default_model())
    ids = sorted(tokenize_splits(splits, tokenizer, max_length)["train"]["input_ids"], key=len)[-batch_size:]
    width = max(map(len, ids))
    input_ids = torch.tensor([x + [0] * (width - len(x)) for x in ids])
    return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long(), "labels": torch.arange(batch_size) % 2}


def group_of(name: str) -> str:
    lowered = name.lower()
    return next((g for g, parts in GROUPS.items() if any(p in lowered for p in parts)), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=None, help="hidden dropout (default: the model's 0.1)")
    parser.add_argument("--attention-dropout", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    quiet_transformers()
    print(common.machine())
    model = load_classifier(default_model(), args.dropout, args.attention_dropout).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    batch = batch_of_reviews(args.batch_size, args.max_length)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(), step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    total = sum(e.self_cpu_time_total for e in events)
    shares = {}
    for e in events:
        shares[group_of(e.key)] = shares.get(group_of(e.key), 0) + e.self_cpu_time_total
    print(f"step {total / args.steps / 1e3:.0f} ms (batch {args.batch_size} x {batch['input_ids'].shape[1]} tokens, "
          f"hidden dropout {model.config.hidden_dropout_prob}, attention dropout {model.config.attention_probs_dropout_prob}): "
          + ", ".join(f"{g} {v / total:.0%}" for g, v in sorted(shares.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
