"""One training arm in a fresh process: the reference recipe or sentitune's, timed after warm-up steps.

Run by train_throughput.py, train_ablation.py, flops.py and accuracy_parity.py as
`python benchmarks/train_arm.py --spec '{"recipe": "sentitune", ...}'`; prints one JSON line last.

Spec keys (all optional but `recipe`):
  recipe         "reference": tokens padded to max_length, Trainer with default TrainingArguments, fp32,
                 the model's own dropouts; "sentitune": `training.trainer.make_trainer` (what `sentitune train`
                 runs: `prepare`, `new_model`, `make_trainer`) with a preset's config.
  preset         sentitune preset the config starts from (default cpu-quick).
  overrides      TrainConfig fields (batch_size, dropout, precision, learning_rate, ...); the schedule fields
                 also drive the reference arm when `schedule` is true.
  schedule       give the reference arm sentitune's schedule (lr, warm-up, weight decay, scheduler, epochs).
  train_per_class, test_per_class   IMDB sample sizes (test 0: no evaluation).
  max_steps      optimizer steps (-1: one full pass over the sample as `overrides.epochs` says).
  warmup_steps   steps left out of the timing.
  attn, optim, pad_multiple, bf16_weights, threads   speed knobs (see train_ablation.py).

The JSON records `precision`, the precision the arm really trained at (the runtime's choice: fp32 on a CPU
without native bf16), and `cpu`, the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import numpy as np
import torch
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

from sentitune.core.machine import Runtime
from sentitune.inference.predict import logits_for_ids
from sentitune.models.loading import load_classifier, quiet_transformers
from sentitune.run.config import load_config
from sentitune.training.trainer import Prepared, make_trainer, new_model

QUIET = 0.9  # CPU share above which a step counts as undisturbed by other processes


class StepClock(TrainerCallback):
    """Wall and CPU seconds of every step after the first `warmup` ones.

    The CPU share of a step (CPU seconds / wall seconds / torch threads) is near 1 when the cores were
    this process's alone; steps under it show another process took the cores (the machine is shared)."""

    def __init__(self, warmup: int):
        self.warmup, self.steps, self.begin = warmup, [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self.begin = (time.perf_counter(), time.process_time())

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step > self.warmup:
            wall, cpu = time.perf_counter() - self.begin[0], time.process_time() - self.begin[1]
            self.steps.append((wall, cpu / wall / torch.get_num_threads()))


class CountingCollator:
    """Wraps a collator and records (batch size, padded width, real tokens) of every batch it builds."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def __call__(self, features):
        batch = self.inner(features)
        rows, width = batch["input_ids"].shape
        self.batches.append((rows, width, int(batch["attention_mask"].sum())))
        return batch


def reference_trainer(spec: dict, cfg, model, prepared: Prepared, out: Path) -> Trainer:
    """The tutorial recipe: pad every review to max_length up front; Trainer with default arguments, fp32."""
    tokenizer, tokenized = prepared.tokenizer, prepared.tokenized(cfg)
    pad = lambda b: tokenizer.pad({"input_ids": b["input_ids"]}, padding="max_length", max_length=cfg.max_length)
    train_set = tokenized["train"].select_columns(["input_ids", "label"]).map(pad, batched=True)
    schedule = dict(learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
                    lr_scheduler_type=cfg.scheduler, num_train_epochs=cfg.epochs) if spec.get("schedule") else {}
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=cfg.batch_size, max_steps=cfg.max_steps,
                             use_cpu=True, seed=cfg.seed, report_to="none", disable_tqdm=True, save_strategy="no",
                             **schedule)
    return Trainer(model=model, args=args, train_dataset=train_set, processing_class=tokenizer)


def sentitune_trainer(spec: dict, cfg, model, prepared: Prepared, out: Path) -> Trainer:
    """sentitune's own Trainer (the assembly `sentitune train` uses), periodic evaluation and checkpoints off."""
    trainer = make_trainer(cfg, prepared, model, out)
    tokenizer = prepared.tokenizer
    if "pad_multiple" in spec:
        trainer.data_collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=spec["pad_multiple"])
    if spec.get("optim"):
        trainer.args.optim = spec["optim"]
    return trainer


def arm_config(spec: dict, out: Path):
    """The TrainConfig of this arm: a preset plus overrides, with evaluation and early stopping off."""
    overrides = {"output_dir": str(out), "max_steps": spec.get("max_steps", -1), "eval_steps": 10**9,
                 "early_stopping_patience": 0, "logging_steps": 10**9, **spec.get("overrides", {})}
    return load_config(preset=spec.get("preset", "cpu-quick"), overrides=overrides)


def evaluate(model, prepared: Prepared, cfg, runtime: Runtime) -> dict:
    """Accuracy on the test sample and the per-example correctness (for a paired test)."""
    test = prepared.tokenized(cfg)["test"]
    logits = logits_for_ids(model, test["input_ids"], prepared.tokenizer.pad_token_id or 0, cfg.eval_batch_size,
                            runtime)
    correct = (logits.argmax(1) == np.asarray(test["label"])).astype(int)
    return {"accuracy": float(correct.mean()), "correct": "".join(map(str, correct))}


def rates(steps: list[tuple[float, float]], batches: list[tuple[int, int, int]], model_config) -> dict:
    """examples/s, real and padded tokens/s and model GFLOP/s over the given steps and their batches.

    GFLOP/s counts the padded batches the hardware computed; useful GFLOP/s counts each batch as if it
    held only its real tokens (its mean real length per row)."""
    seconds = sum(s[0] for s in steps)
    rows, real = sum(b[0] for b in batches), sum(b[2] for b in batches)
    padded = sum(b[0] * b[1] for b in batches)
    flops = sum(common.train_flops(model_config, b[0], b[1]) for b in batches)
    useful = sum(common.train_flops(model_config, b[0], b[2] / b[0]) for b in batches)
    return {"seconds": seconds, "examples_per_s": rows / seconds, "tokens_per_s": real / seconds,
            "padded_tokens_per_s": padded / seconds, "padding_share": 1 - real / padded,
            "gflops": flops / seconds / 1e9, "useful_gflops": useful / seconds / 1e9}


def throughput(clock: StepClock, batches: list[tuple[int, int, int]], model_config) -> dict:
    """Rates over all timed steps, and over the quiet ones (CPU share >= QUIET) as `quiet_*`."""
    quiet = [i for i, s in enumerate(clock.steps) if s[1] >= QUIET]
    figures = {"timed_steps": len(clock.steps), "quiet_steps": len(quiet),
               "cpu_share": sum(s[0] * s[1] for s in clock.steps) / sum(s[0] for s in clock.steps),
               **rates(clock.steps, batches, model_config)}
    if quiet:
        quiet_rates = rates([clock.steps[i] for i in quiet], [batches[i] for i in quiet], model_config)
        figures |= {f"quiet_{k}": v for k, v in quiet_rates.items() if k != "seconds"}
    return figures


def run(spec: dict) -> dict:
    """Build, train and (optionally) evaluate one arm; returns its figures."""
    quiet_transformers()
    torch.set_num_threads(spec.get("threads", torch.get_num_threads()))
    out = Path(tempfile.mkdtemp(prefix="sentitune-bench-"))
    cfg = arm_config(spec, out)
    prepared = common.imdb_prepared(cfg, spec.get("train_per_class", 200), max(spec.get("test_per_class", 0), 4))
    reference = spec["recipe"] == "reference"
    torch.manual_seed(cfg.seed)  # the same classifier-head initialisation in every arm
    model = load_classifier(cfg.model, prepared.labels, attention="sdpa") if reference else new_model(cfg, prepared)
    if spec.get("attn"):
        model.set_attn_implementation(spec["attn"])
    if spec.get("bf16_weights"):
        model.to(torch.bfloat16)
    trainer = (reference_trainer if reference else sentitune_trainer)(spec, cfg, model, prepared, out)
    warmup = spec.get("warmup_steps", 0)
    clock, trainer.data_collator = StepClock(warmup), CountingCollator(trainer.data_collator)
    trainer.add_callback(clock)
    started = time.perf_counter()
    result = trainer.train()
    batches = trainer.data_collator.batches[warmup : trainer.state.global_step]
    runtime = Runtime.resolve("fp32") if reference else prepared.runtime
    figures = {"train_wall_s": time.perf_counter() - started, "train_loss": result.metrics.get("train_loss"),
               **throughput(clock, batches, model.config), "peak_rss_mb": common.peak_rss_mb(),
               "precision": runtime.precision, "cpu": runtime.cpu.summary()}
    if spec.get("test_per_class", 0) > 0:
        figures |= evaluate(trainer.model, prepared, cfg, runtime)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="JSON object, see above")
    print(json.dumps(run(json.loads(parser.parse_args().spec))))


if __name__ == "__main__":
    main()
