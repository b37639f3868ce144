"""Where a training step's time goes: torch.profiler over a few steps of the default model, as `sentitune train`
runs them.

    flock /tmp/sentitune-cpu.lock python benchmarks/profile_step.py
    flock /tmp/sentitune-cpu.lock python benchmarks/profile_step.py --dropout 0.0 --batch-size 32

One step as the Trainer runs it, built by `sentitune.training.trainer` (`prepare`, `new_model`, `make_trainer`): the
forward under the Trainer's autocast at the precision the runtime picks (bf16 on a CPU with native bf16, fp32
on one without), the Trainer's loss, backward, the Trainer's optimizer (fused AdamW) and zero_grad, on a batch
of the longest real IMDB reviews of a small sample, collated by the Trainer's collator (256 tokens). Prints the
top operators by self CPU time and, last, the share of the step in matmuls, dropout's random masks and
everything else.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import torch
from torch.profiler import ProfilerActivity, profile

from sentitune.models.loading import quiet_transformers
from sentitune.run.config import load_config
from sentitune.training.trainer import make_trainer, new_model

GROUPS = {  # operator-name fragments -> group, first match wins
    "matmul": ("mm", "addmm", "bmm", "linear", "matmul", "scaled_dot_product", "_flash_attention"),
    "dropout masks": ("bernoulli", "rand"),
    "optimizer": ("adam", "_foreach", "fused"),
}


def longest_batch(trainer, batch_size: int) -> dict[str, torch.Tensor]:
    """The `batch_size` longest reviews of the trainer's train sample (truncated to max_length), collated by the
    trainer's own collator: the worst-case, fully used batch."""
    train = trainer.train_dataset
    lengths = [len(ids) for ids in train["input_ids"]]
    rows = sorted(range(len(train)), key=lengths.__getitem__)[-batch_size:]
    return trainer.data_collator([train[i] for i in rows])


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
    out = Path(tempfile.mkdtemp(prefix="sentitune-profile-"))
    # no preset: the default model's own dropouts unless overridden (unset flags arrive as None and are dropped)
    cfg = load_config(overrides={"output_dir": str(out), "batch_size": args.batch_size, "max_length": args.max_length,
                                 "dropout": args.dropout, "attention_dropout": args.attention_dropout})
    prepared = common.imdb_prepared(cfg, args.batch_size, 4)
    cfg = prepared.cfg
    model = new_model(cfg, prepared).train()
    trainer = make_trainer(cfg, prepared, model, out)
    optimizer = trainer.create_optimizer()
    batch = longest_batch(trainer, args.batch_size)

    def step() -> None:
        with trainer.accelerator.autocast():  # the autocast the Trainer's prepared model runs under
            loss = trainer.compute_loss(model, batch)
        trainer.accelerator.backward(loss)
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
          f"{prepared.runtime.precision}, hidden dropout {model.config.hidden_dropout_prob}, "
          f"attention dropout {model.config.attention_probs_dropout_prob}): "
          + ", ".join(f"{g} {v / total:.0%}" for g, v in sorted(shares.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
