"""Training speed of one knob at a time, on top of sentitune's trainer (each variant in a fresh process).

    flock /tmp/sentitune-cpu.lock python benchmarks/train_ablation.py                     # 320 reviews per variant
    flock /tmp/sentitune-cpu.lock python benchmarks/train_ablation.py --only base no-hidden-dropout

Speed only: a variant that changes what the model learns (dropout, batch size, bf16 weights) needs the
accuracy check of accuracy_parity.py before it can become a default. Prints the table and, last, each
variant's examples/s as a ratio to `base` (the cpu-quick preset as committed before this benchmark: bf16
autocast, dynamic padding to a multiple of 8, length grouping, attention dropout 0, hidden dropout 0.1, sdpa,
batch 16). The quiet-step columns (see train_arm.QUIET) flag contention, but a variant with a serial operator
(attention dropout's random masks) has a low CPU share by itself: read its overall rate.

Variants run through `sentitune.training.trainer` (train_arm.py); the `precision` column is the precision each really
trained at (the runtime's choice: fp32 on a CPU without native bf16, where `base` is fp32 too). The variants
that only exist in bf16 (bf16 autocast with the model's dropouts, bf16 weights) are skipped on such a CPU:
emulated bf16 would take hours.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

NO_HIDDEN = {"dropout": 0.0}
VARIANTS: dict[str, dict] = {
    "fp32-model-dropouts": {"overrides": {"precision": "fp32", "attention_dropout": 0.1}},
    "bf16-model-dropouts": {"overrides": {"precision": "bf16", "attention_dropout": 0.1}},
    "base": {},
    "eager-attention": {"attn": "eager"},
    "no-pad-multiple": {"pad_multiple": None},
    "foreach-adamw": {"optim": "adamw_torch"},
    "no-hidden-dropout": {"overrides": NO_HIDDEN},
    "no-hidden-dropout-batch32": {"overrides": {**NO_HIDDEN, "batch_size": 32}},
    "no-hidden-dropout-bf16-weights": {"overrides": NO_HIDDEN, "bf16_weights": True},
}
NEEDS_BF16 = {"bf16-model-dropouts", "no-hidden-dropout-bf16-weights"}  # skipped without native bf16
COLUMNS = ["variant", "precision", "examples_per_s", "cpu_share", "quiet_steps", "quiet_examples_per_s",
           "quiet_tokens_per_s", "quiet_gflops", "padding_share", "peak_rss_mb", "ratio_to_base"]


def variant_spec(name: str, args) -> dict:
    spec = {"recipe": "sentitune", **VARIANTS[name]}
    overrides = {"max_length": args.max_length, **spec.get("overrides", {})}
    batch = overrides.setdefault("batch_size", 16)
    return {**spec, "overrides": overrides, "train_per_class": args.train_examples // 2,
            "max_steps": args.train_examples // batch, "warmup_steps": args.warmup_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-examples", type=int, default=320, help="IMDB train reviews per variant")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="variants to run (default: all)")
    args = parser.parse_args()
    print(common.machine())
    rows, bf16 = [], common.native_bf16()
    for name in args.only or VARIANTS:
        if name in NEEDS_BF16 and not bf16:
            print(f"{name}: skipped, {common.NO_BF16}", flush=True)
            continue
        rows.append({"variant": name, **common.run_json("train_arm.py", variant_spec(name, args))})
        print(f"{name}: {rows[-1]['examples_per_s']:.2f} examples/s, "
              f"quiet steps {rows[-1].get('quiet_examples_per_s', 0):.2f}", flush=True)
    base = next((r for r in rows if r["variant"] == "base"), None)
    for row in rows:
        row["ratio_to_base"] = row["examples_per_s"] / base["examples_per_s"] if base else float("nan")
    print(common.markdown_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
