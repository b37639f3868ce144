"""Training throughput: sentitune's default (the cpu-quick preset) against the reference recipe, A B A B.

    flock /tmp/sentitune-cpu.lock python benchmarks/train_throughput.py                 # 400 reviews, 2 rounds
    flock /tmp/sentitune-cpu.lock python benchmarks/train_throughput.py --train-examples 1600 --repeats 3

Reference: every review padded to max_length by the tokenizer, `Trainer` with default `TrainingArguments`
(fp32, the model's dropouts). sentitune: `sentitune.training.trainer`'s assembly, as `sentitune train` runs it, at the
precision the runtime picks (the `precision` column: bf16 on a CPU with native bf16, else fp32).
Same model, IMDB train sample, batch size, max_length and machine. Each arm
runs in a fresh process (clean peak RSS); the first `--warmup-steps` steps of each run are not timed.
Prints a table per run, then the mean per arm and the ratio last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

ARMS = {
    "reference": {"recipe": "reference"},
    "sentitune": {"recipe": "sentitune"},
    # candidates for the preset, measured in the same rotation (speed only; accuracy_parity.py prices them)
    "sentitune-hidden-dropout-0": {"recipe": "sentitune", "overrides": {"dropout": 0.0}},
    "sentitune-sdpa": {"recipe": "sentitune", "overrides": {"attention": "sdpa"}},
    "sentitune-hidden-dropout-0-batch-32": {"recipe": "sentitune", "overrides": {"dropout": 0.0, "batch_size": 32}},
}
COLUMNS = ["run", "arm", "precision", "examples_per_s", "tokens_per_s", "padded_tokens_per_s", "gflops", "peak_rss_mb",
           "cpu_share", "timed_steps", "quiet_steps", "quiet_examples_per_s"]
MEANS = ["examples_per_s", "tokens_per_s", "gflops", "peak_rss_mb", "cpu_share"]


def arm_spec(arm: str, args) -> dict:
    overrides = {"batch_size": args.batch_size, "max_length": args.max_length, **ARMS[arm].get("overrides", {})}
    return {**ARMS[arm], "overrides": overrides, "train_per_class": args.train_examples // 2,
            "max_steps": args.train_examples // overrides["batch_size"], "warmup_steps": args.warmup_steps}


def summary(runs: list[dict], arms: list[str]) -> list[dict]:
    """Per arm: the mean over its runs, and the rate over its quiet steps of all runs (see train_arm.QUIET)."""
    rows = []
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        quiet_s = sum(r["quiet_steps"] / r["quiet_examples_per_s"] for r in mine if r["quiet_steps"])
        quiet_rows = sum(r["quiet_steps"] for r in mine)
        row = {"arm": arm, "precision": mine[0]["precision"], **{k: mean(r[k] for r in mine) for k in MEANS}}
        row["quiet_examples_per_s"] = quiet_rows / quiet_s if quiet_s else float("nan")
        row["ratio"] = row["examples_per_s"] / rows[0]["examples_per_s"] if rows else 1.0
        row["quiet_ratio"] = row["quiet_examples_per_s"] / rows[0]["quiet_examples_per_s"] if rows else 1.0
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-examples", type=int, default=400, help="IMDB train reviews per run (balanced)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--warmup-steps", type=int, default=3, help="steps per run left out of the timing")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of A B")
    parser.add_argument("--arms", nargs="*", choices=list(ARMS), default=["reference", "sentitune"],
                        help="arms in rotation order (the reference always first)")
    args = parser.parse_args()
    arms = list(dict.fromkeys(["reference", *args.arms]))
    print(common.machine())
    runs = []
    for round_ in range(args.repeats):
        for arm in arms:
            runs.append({"run": round_ + 1, "arm": arm, **common.run_json("train_arm.py", arm_spec(arm, args))})
            print(f"round {round_ + 1} {arm}: {runs[-1]['examples_per_s']:.2f} examples/s", flush=True)
    print(common.markdown_table(runs, COLUMNS))
    rows = summary(runs, arms)
    print(common.markdown_table(rows, ["arm", "precision", *MEANS, "quiet_examples_per_s", "ratio", "quiet_ratio"]))
    for row in rows[1:]:
        verdict = "met" if min(row["ratio"], row["quiet_ratio"]) >= 4 else "not met"
        print(f"ratio {row['arm']} ({row['precision']})/reference: {row['ratio']:.2f}x examples/s, "
              f"{row['quiet_ratio']:.2f}x on quiet steps (target >= 4x: {verdict}); "
              f"peak RSS {row['peak_rss_mb']:.0f} vs {rows[0]['peak_rss_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
