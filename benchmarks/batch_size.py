"""`--batch-size auto` against a full sweep, on the main job's model and data, in one run.

Trains `--steps` optimizer steps at every micro-batch size from 1 to `--largest` through sentitune's own assembly
(cpu-quick on IMDB: MiniLM, 256 tokens, the machine's precision): up to the preset's batch of 16, gradient
accumulation keeps 16 examples per optimizer step, as `auto` does; above it each size is its own effective batch
(speed only: it would change the optimisation). Then runs the tuner as `sentitune run --batch-size auto` does, and
checks the issue's targets: auto's choice reaches >= 95% of the best examples/s of the full sweep and at least the
preset's fixed size, and tuning costs <= 5% of the main job's wall time (`--job-seconds`, default the 10-minute
budget). The eval batch size is swept and checked the same way on the validation texts.

    flock /tmp/sentitune-cpu.lock python benchmarks/batch_size.py --output benchmarks/results/batch_size.json

On a CUDA machine the same script sweeps until memory runs out (fastest size against the largest that fits).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from sentitune.inference.batch_size import EVAL_SIZES, fastest_eval_batch, measured, memory_limit_mb
from sentitune.run.config import load_config
from sentitune.training.autobatch import training_rate, tuned_eval_batch, tuned_train_batch
from sentitune.training.trainer import new_model


def full_train_sweep(cfg, prepared, largest: int, steps: int) -> list[dict]:
    """Examples/s of every power-of-two micro-batch up to `largest` (accumulating to the preset's batch below it),
    measured as the tuner measures (`training_rate`: a length spread of the train split, tokens/s), with more steps."""
    rows, preset, size = [], cfg.batch_size * cfg.gradient_accumulation, 1
    limit = memory_limit_mb(cfg.batch_memory_limit_gb, prepared.runtime.device)
    while size <= largest:
        effective = max(size, preset)
        probe = dataclasses.replace(cfg, batch_size=size, gradient_accumulation=effective // size, max_steps=steps + 1,
                                    eval_steps=10**9, early_stopping_patience=0, logging_steps=10**9)
        row = measured({"batch_size": size, "accumulation": effective // size, "effective": effective, "fits": True,
                        "reason": None}, lambda: training_rate(probe, prepared), prepared.runtime.device, limit)
        rows.append(row)
        if not row["fits"]:
            break
        print(f"  train {size:>4} x {row['accumulation']:>2}: {row['examples_per_s']:7.2f} ex/s, "
              f"{row['memory_mb']:,} MB", flush=True)
        size *= 2
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--largest", type=int, default=64, help="Largest micro-batch of the full sweep.")
    parser.add_argument("--steps", type=int, default=6, help="Timed optimizer steps per size in the full sweep.")
    parser.add_argument("--job-seconds", type=float, default=600.0, help="The job the tuning cost is set against.")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    print(common.machine(), flush=True)
    cfg = load_config(preset="cpu-quick", overrides={"data": {"data": str(common.IMDB)}})
    prepared = common.imdb_prepared(cfg, args.train_per_class, 100, validation_per_class=128)
    cfg = prepared.cfg
    full = full_train_sweep(cfg, prepared, args.largest, args.steps)
    started = time.perf_counter()
    auto_cfg, sweep = tuned_train_batch(cfg, prepared)
    tuning_s = time.perf_counter() - started
    print(sweep.sentence(), flush=True)
    rates = {r["batch_size"]: r["examples_per_s"] for r in full if r["fits"]}
    same_batch = {s: v for s, v in rates.items() if s <= cfg.batch_size}  # keep the preset's effective batch
    best = max(same_batch.values())
    train = {"full_sweep": full, "auto": sweep.to_dict(), "auto_choice": auto_cfg.batch_size,
             "best_same_effective": max(same_batch, key=same_batch.get), "preset": cfg.batch_size,
             "auto_vs_best": round(rates[auto_cfg.batch_size] / best, 3),
             "auto_vs_preset": round(rates[auto_cfg.batch_size] / rates[cfg.batch_size], 3),
             "tuning_s": round(tuning_s, 1), "tuning_share_of_job": round(tuning_s / args.job_seconds, 4),
             "fastest_any": max(rates, key=rates.get),
             "largest_that_fits": max(rates)}

    model = new_model(cfg, prepared)
    texts = list(prepared.tokenized(cfg)["validation"]["input_ids"])
    eval_rows, _ = fastest_eval_batch(model, texts, prepared.tokenizer.pad_token_id or 0, prepared.runtime,
                                      memory_limit_mb(cfg.batch_memory_limit_gb, prepared.runtime.device))
    started = time.perf_counter()
    eval_cfg, eval_sweep = tuned_eval_batch(cfg, prepared, model)
    eval_s = time.perf_counter() - started
    eval_rates = {r["batch_size"]: r["examples_per_s"] for r in eval_rows if r["examples_per_s"]}
    evaluation = {"full_sweep": eval_rows, "auto": eval_sweep.to_dict(), "auto_choice": eval_cfg.eval_batch_size,
                  "preset": cfg.eval_batch_size, "sizes": list(EVAL_SIZES),
                  "auto_vs_best": round(eval_rates[eval_cfg.eval_batch_size] / max(eval_rates.values()), 3),
                  "auto_vs_preset": round(eval_rates[eval_cfg.eval_batch_size] / eval_rates[cfg.eval_batch_size], 3),
                  "tuning_s": round(eval_s, 1)}
    print(eval_sweep.sentence(), flush=True)
    verdicts = {"train auto >= 95% of best": train["auto_vs_best"] >= 0.95,
                "train auto >= preset": train["auto_vs_preset"] >= 1.0,
                "train tuning <= 5% of the job": train["tuning_share_of_job"] <= 0.05,
                "eval auto >= 95% of best": evaluation["auto_vs_best"] >= 0.95,
                "eval auto >= preset": evaluation["auto_vs_preset"] >= 1.0}
    result = {"machine": common.machine(), "train": train, "eval": evaluation, "verdicts": verdicts}
    print(json.dumps({k: v for k, v in train.items() if k not in ("full_sweep", "auto")}, indent=1))
    print(json.dumps({k: v for k, v in evaluation.items() if k not in ("full_sweep", "auto")}, indent=1))
    for name, ok in verdicts.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
