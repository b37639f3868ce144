"""Does the speed cost accuracy? The same schedule trained the reference way and the sentitune way.

    flock /tmp/sentitune-cpu.lock python benchmarks/accuracy_parity.py                    # 1,200 train, 2,000 test
    flock /tmp/sentitune-cpu.lock python benchmarks/accuracy_parity.py --train-examples 5000 --arms reference sentitune

Every arm: the same IMDB train sample, the same token ids (head+tail at max_length), the same seed and
classifier-head initialisation, and the same schedule (the preset's learning rate, warm-up, weight decay,
scheduler, batch size, one epoch); the final model is scored on the same fixed, balanced test sample.
reference: fp32, every review padded to max_length, random batches, the model's dropouts (0.1/0.1),
scored in fp32. sentitune: the preset as it is, trained by `sentitune.training.trainer` as `sentitune train` trains it
and scored the sentitune way (bf16 where the CPU has native bf16, else fp32; the `precision` column says which).
sentitune-hidden-dropout-0: the preset with hidden dropout off too (no random masks at all), to price that knob.
Prints accuracies, the difference in points and McNemar's exact p-value against the reference last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from sentitune.core.metrics import mcnemar

ARMS = {
    "reference": {"recipe": "reference", "schedule": True},
    "sentitune": {"recipe": "sentitune"},
    "sentitune-hidden-dropout-0": {"recipe": "sentitune", "overrides": {"dropout": 0.0}},
    "sentitune-sdpa": {"recipe": "sentitune", "overrides": {"attention": "sdpa"}},
}
COLUMNS = ["arm", "precision", "accuracy", "points_vs_reference", "mcnemar_p", "train_wall_s", "examples_per_s",
           "train_loss"]


def arm_spec(name: str, args) -> dict:
    spec = dict(ARMS[name])
    spec["overrides"] = {"max_length": args.max_length, **spec.get("overrides", {})}
    return {**spec, "preset": args.preset, "train_per_class": args.train_examples // 2,
            "test_per_class": args.test_examples // 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-examples", type=int, default=1200)
    parser.add_argument("--test-examples", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--preset", default="cpu-quick", help="schedule and sentitune settings")
    parser.add_argument("--arms", nargs="*", choices=list(ARMS), default=list(ARMS))
    args = parser.parse_args()
    print(common.machine())
    rows = []
    for name in dict.fromkeys(["reference", *args.arms]):
        rows.append({"arm": name, **common.run_json("train_arm.py", arm_spec(name, args))})
        print(f"{name}: accuracy {rows[-1]['accuracy']:.4f} in {rows[-1]['train_wall_s']:.0f} s", flush=True)
    ref = rows[0]
    for row in rows:
        test = mcnemar([c == "1" for c in ref["correct"]], [c == "1" for c in row["correct"]])
        row["points_vs_reference"] = 100 * (row["accuracy"] - ref["accuracy"])
        row["mcnemar_p"] = test["p_value"]
    print(common.markdown_table(rows, COLUMNS))
    for row in rows[1:]:
        verdict = "met" if row["points_vs_reference"] >= -0.3 else "not met"
        print(f"{row['arm']}: {100 * row['accuracy']:.2f}% vs reference {100 * ref['accuracy']:.2f}% "
              f"({row['points_vs_reference']:+.2f} points, McNemar p={row['mcnemar_p']:.3f}; "
              f"within 0.3 points: {verdict}); train time {row['train_wall_s']:.0f} s vs {ref['train_wall_s']:.0f} s")


if __name__ == "__main__":
    main()
