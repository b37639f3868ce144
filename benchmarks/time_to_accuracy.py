"""Time to accuracy: wall time from the start of training until the model first scores >= 90% on a fixed test
sample.

    flock /tmp/sentitune-cpu.lock python benchmarks/time_to_accuracy.py                         # cpu-quick, 8 min cap
    flock /tmp/sentitune-cpu.lock python benchmarks/time_to_accuracy.py --preset cpu-full --cap-minutes 60

Trains with a preset exactly as `sentitune train` would (`sentitune.training.trainer.prepare`, `new_model` and
`make_trainer`: its train sample, schedule, precision and speed settings; the Trainer's own validation passes
are off) and scores the model every `--eval-every` steps on a fixed, balanced 2,000-review IMDB test sample,
the sentitune way (`predict.logits_for_ids` at the run's runtime). Stops at the target or at the cap. Reports
the training clock (scoring paused) and the wall clock (scoring included). Prints the curve and the verdict
last; the verdict names the precision the run trained at (fp32 on a CPU without native bf16).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import numpy as np
import yaml
from train_arm import arm_config, sentitune_trainer
from transformers import TrainerCallback

from sentitune.core.machine import Runtime
from sentitune.inference.predict import logits_for_ids
from sentitune.models.loading import quiet_transformers
from sentitune.training.trainer import new_model


class AccuracyClock(TrainerCallback):
    """Scores the test sample every `every` steps; stops training at `target` or after `cap_s` of training."""

    def __init__(self, test, pad_id: int, runtime: Runtime, every: int, target: float, cap_s: float):
        self.ids, self.labels = test["input_ids"], np.asarray(test["label"])
        self.pad_id, self.runtime, self.every, self.target, self.cap_s = pad_id, runtime, every, target, cap_s
        self.curve, self.scoring_s, self.start = [], 0.0, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        last = state.global_step == state.max_steps
        if state.global_step % self.every and not last:
            return
        now = time.perf_counter()
        point = {"step": state.global_step, "examples": state.global_step * args.train_batch_size,
                 "train_s": now - self.start - self.scoring_s}
        logits = logits_for_ids(model, self.ids, self.pad_id, 64, self.runtime)
        model.train()
        self.scoring_s += time.perf_counter() - now
        point["wall_s"] = time.perf_counter() - self.start  # when the score is known
        accuracy = point["accuracy"] = float((logits.argmax(1) == self.labels).mean())
        self.curve.append(point)
        print(f"step {state.global_step}: accuracy {accuracy:.4f} after {self.curve[-1]['train_s']:.0f} s of training",
              flush=True)
        if accuracy >= self.target or self.curve[-1]["train_s"] >= self.cap_s:
            control.should_training_stop = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-quick")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides (YAML values), e.g. dropout=0")
    parser.add_argument("--train-per-class", type=int, default=None, help="default: the preset's own sample")
    parser.add_argument("--test-examples", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=40, help="optimizer steps between scorings")
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--cap-minutes", type=float, default=8.0, help="stop after this much training time")
    args = parser.parse_args()
    quiet_transformers()
    print(common.machine())
    out = Path(tempfile.mkdtemp(prefix="sentitune-tta-"))
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    cfg = arm_config({"preset": args.preset, "overrides": overrides}, out)
    # a preset without a train sample means "all": 11,000 per class is what the validation holdout leaves (>= 11,190)
    per_class = args.train_per_class or cfg.data.train_per_class or 11000
    prepared = common.imdb_prepared(cfg, per_class, args.test_examples // 2)
    cfg = prepared.cfg  # max_length resolved, as `sentitune train` resolves it
    model = new_model(cfg, prepared)  # seeded: the head `sentitune train` would start from
    trainer = sentitune_trainer({}, cfg, model, prepared, out)
    runtime = prepared.runtime
    clock = AccuracyClock(prepared.tokenized(cfg)["test"], prepared.tokenizer.pad_token_id or 0, runtime,
                          args.eval_every, args.target, 60 * args.cap_minutes)
    trainer.add_callback(clock)
    trainer.train()
    print(common.markdown_table(clock.curve, ["step", "examples", "train_s", "wall_s", "accuracy"]))
    hit = next((p for p in clock.curve if p["accuracy"] >= args.target), None)
    best = max(p["accuracy"] for p in clock.curve)
    run = f"{args.preset}, {runtime.precision}, {2 * per_class} train reviews"
    if hit:
        print(f"reached {args.target:.0%} at step {hit['step']} ({hit['examples']} examples): "
              f"{hit['train_s']:.0f} s of training, {hit['wall_s']:.0f} s wall with scoring ({run})")
    else:
        print(f"not reached: best {best:.2%} after {clock.curve[-1]['train_s']:.0f} s of training "
              f"(cap {args.cap_minutes:g} min, {run})")


if __name__ == "__main__":
    main()
