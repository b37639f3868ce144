"""`--batch-size auto` and `--eval-batch-size auto`: the batch sizes that run fastest on this machine, measured.

The Trainer's `auto_find_batch_size` halves the batch after an out-of-memory error: it finds the largest size that
fits, not the fastest, and changes the effective batch (so the optimisation and the accuracy). Here each candidate
micro-batch (powers of two up to the configured batch) trains a few optimizer steps through the run's own assembly
(`make_trainer`: its data, sequence lengths, precision and attention kernel), and gradient accumulation keeps
`batch_size x gradient_accumulation` examples per optimizer step, so only the speed changes. The eval size is timed
the same way on the validation texts. A size that runs out of memory (CUDA), or whose resident memory passes the
limit (CPU), ends the sweep; the fastest size that fitted is chosen.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback

from ..core.errors import SentituneError
from ..inference.batch_size import fastest_eval_batch, measured, memory_limit_mb, memory_mb
from ..run.config import TrainConfig, TrainingConfig

SWEEP_STEPS = 3  # optimizer steps timed per candidate, after one untimed warm-up step


class StepClock(TrainerCallback):
    """Seconds and padded tokens of each optimizer step."""

    def __init__(self, accumulation: int = 1):
        self.times, self.batch_tokens, self.accumulation = [], [], accumulation

    def counting(self, collator):
        """`collator`, counting the padded tokens of every batch it makes (the Trainer collates a step's batches
        before the step begins, so they are told apart by their order)."""
        def collate(features):
            batch = collator(features)
            self.batch_tokens.append(batch["input_ids"].numel())
            return batch

        return collate

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.started)

    def tokens_per_s(self, skip: int = 1) -> float:
        """Padded tokens per second over the steps after the first `skip` (which pay for warm-up)."""
        timed = range(min(skip, len(self.times) - 1), len(self.times))
        tokens = sum(sum(self.batch_tokens[i * self.accumulation:(i + 1) * self.accumulation]) for i in timed)
        return tokens / sum(self.times[i] for i in timed)


def tokens_per_example(train) -> float:
    """Padded tokens per example of a tokenized train set (lengths rounded up to the multiple of 8 batches are padded
    to): steps take time in proportion to their tokens, so tokens/s over a few steps says examples/s of an epoch."""
    lengths = [len(ids) for ids in train["input_ids"]]
    return sum(-(-n // 8) * 8 for n in lengths) / max(len(lengths), 1)


def length_spread(prepared, cfg: TrainConfig, n: int):
    """A copy of `prepared` whose train split is `n` of its texts at evenly spaced quantiles of length: a few
    length-grouped steps over them hold the mix of lengths a whole epoch holds (its first steps, its longest texts)."""
    import datasets
    import numpy as np

    tokenized = prepared.tokenized(cfg)
    lengths = np.array([len(ids) for ids in tokenized["train"]["input_ids"]])
    picks = np.argsort(lengths, kind="stable")[np.linspace(0, len(lengths) - 1, n).round().astype(int)]
    spread = datasets.DatasetDict({**tokenized, "train": tokenized["train"].select(np.sort(picks))})
    return dataclasses.replace(prepared, _tokenized={(cfg.max_length, cfg.truncation): spread})


def training_rate(probe: TrainConfig, prepared, callbacks=(), skip: int = 1) -> float:
    """Training examples/s of `probe` (a config with a few max_steps) on this machine: its steps through the run's
    own assembly over texts of every length (`length_spread`), timed and counted in tokens, as examples/s of a
    whole epoch of the prepared data."""
    from .trainer import make_trainer, new_model

    clock = StepClock(probe.gradient_accumulation)
    examples = probe.max_steps * probe.batch_size * probe.gradient_accumulation
    spread = length_spread(prepared, probe, examples)
    with tempfile.TemporaryDirectory(prefix="sentitune-rate-") as out:
        trainer = make_trainer(probe, spread, new_model(probe, prepared), out, [clock, *callbacks])
        trainer.data_collator = clock.counting(trainer.data_collator)
        trainer.train()
    return clock.tokens_per_s(skip) / tokens_per_example(prepared.tokenized(probe)["train"])


@dataclass
class Sweep:
    """One measured sweep: a row per candidate size, the choice and what the sweep cost."""

    kind: str  # "train" or "eval"
    rows: list[dict]
    chosen: int
    accumulation: int = 1
    seconds: float = 0.0
    memory_limit_mb: float = 0.0
    device: str = "cpu"
    extra: dict = field(default_factory=dict)

    @property
    def chosen_rate(self) -> float:
        return next(r["examples_per_s"] for r in self.rows if r["batch_size"] == self.chosen)

    def sentence(self) -> str:
        """One console line: what was chosen and why, with the measured rates."""
        others = ", ".join(f"{r['examples_per_s']:.1f} at {r['batch_size']}" for r in self.rows
                           if r["batch_size"] != self.chosen and r["examples_per_s"])
        stopped = [f"{r['batch_size']} ({r['reason']})" for r in self.rows if not r["fits"]]
        what = "training" if self.kind == "train" else "prediction"
        size = (f"{self.chosen} x {self.accumulation} accumulated (effective {self.chosen * self.accumulation})"
                if self.kind == "train" else str(self.chosen))
        return (f"--{'eval-' if self.kind == 'eval' else ''}batch-size auto: {size}, the fastest {what} here at "
                f"{self.chosen_rate:.1f} examples/s" + (f" (against {others})" if others else "")
                + (f"; did not fit: {', '.join(stopped)}" if stopped else "") + f"; measured in {self.seconds:.0f} s.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def split_batch(effective: int, fastest: int) -> tuple[int, int]:
    """(micro-batch, accumulation) for `effective` examples per step: the largest candidate no larger than the
    fastest measured micro-batch (a tuning trial asks for its own effective batch)."""
    candidates = train_candidates(effective)
    micro = max([size for size in candidates if size <= fastest] or candidates[:1])
    return micro, effective // micro


def train_candidates(effective: int) -> list[int]:
    """Powers of two up to the effective batch that divide it (so accumulation keeps it exactly), and itself."""
    sizes = [2**i for i in range(effective.bit_length()) if effective % 2**i == 0 and 2**i >= 2]
    return sorted(set(sizes) | {effective})


def tuned_train_batch(cfg: TrainConfig, prepared, callbacks=()) -> tuple[TrainConfig, Sweep]:
    """`cfg` with the fastest micro-batch size that fits and the accumulation that keeps its effective batch, and
    the sweep that chose it. `callbacks` join each candidate's Trainer (tests inject an allocation failure)."""
    return swept(cfg, lambda probe: training_rate(probe, prepared, callbacks), prepared.runtime.device)


def swept(cfg: TrainingConfig, rate_of, device: torch.device) -> tuple[TrainingConfig, Sweep]:
    """The sweep over `cfg`'s micro-batch candidates, `rate_of(probe)` giving the examples/s of a probe config (a
    few max_steps at one size, accumulating to the effective batch), and `cfg` set to the fastest that fitted."""
    effective = cfg.batch_size * cfg.gradient_accumulation
    started, rows = time.perf_counter(), []
    limit, base = memory_limit_mb(cfg.batch_memory_limit_gb, device), memory_mb(device)
    for size in train_candidates(effective):
        probe = dataclasses.replace(cfg, batch_size=size, gradient_accumulation=effective // size,
                                    max_steps=SWEEP_STEPS + 1, logging_steps=10**9, save_total_limit=1,
                                    **probe_settings(cfg))
        row = {"batch_size": size, "accumulation": effective // size, "examples_per_s": None, "fits": True,
               "reason": None, "memory_mb": None}
        rows.append(row)
        if not measured(row, lambda: rate_of(probe), device, limit)["fits"] or grown_past(row, rows, base, limit):
            break
    return chosen(cfg, rows, "train", effective, started, limit, device)


def probe_settings(cfg: TrainingConfig) -> dict:
    """What a timing probe turns off: evaluations, early stopping (fine-tuning) or held-out scoring (adaptation)."""
    off = {"eval_steps": 10**9, "early_stopping_patience": 0, "save_steps": 10**9}
    return {k: v for k, v in off.items() if hasattr(cfg, k)}


def grown_past(row: dict, rows: list[dict], base: float, limit: float) -> bool:
    """Whether the next size would pass the memory limit, judged from how much this one added over the last."""
    before = rows[-2]["memory_mb"] if len(rows) > 1 else base
    return row["memory_mb"] + 2 * max(row["memory_mb"] - before, 0) > limit


def chosen(cfg: TrainConfig, rows: list[dict], kind: str, effective: int, started: float, limit: float,
           device) -> tuple[TrainConfig, Sweep]:
    fitting = [r for r in rows if r["fits"]]
    if not fitting:
        raise SentituneError(f"--{'eval-' if kind == 'eval' else ''}batch-size auto: no batch size fits on this "
                             f"{device.type.upper()} (even {rows[0]['batch_size']}: {rows[0]['reason']}); set a "
                             "smaller --max-length or a larger --batch-memory-limit-gb.")
    best = max(fitting, key=lambda r: r["examples_per_s"])
    sweep = Sweep(kind, rows, best["batch_size"], best.get("accumulation", 1), round(time.perf_counter() - started, 2),
                  round(limit), device.type)
    if kind == "train":
        tuned = dataclasses.replace(cfg, batch_size=best["batch_size"], gradient_accumulation=best["accumulation"])
        return tuned, sweep
    return dataclasses.replace(cfg, eval_batch_size=best["batch_size"]), sweep


def tuned_eval_batch(cfg: TrainConfig, prepared, model=None) -> tuple[TrainConfig, Sweep]:
    """`cfg` with the eval batch size that predicts the validation texts fastest (at max_length), and its sweep."""
    from .trainer import new_model

    model = model if model is not None else new_model(cfg, prepared)
    rows, started = fastest_eval_batch(model, list(prepared.tokenized(cfg)["validation"]["input_ids"]),
                                       prepared.tokenizer.pad_token_id or 0, prepared.runtime,
                                       memory_limit_mb(cfg.batch_memory_limit_gb, prepared.runtime.device))
    return chosen(cfg, rows, "eval", 1, started, memory_limit_mb(cfg.batch_memory_limit_gb, prepared.runtime.device),
                  prepared.runtime.device)


def tuned(prepared, callbacks=()):
    """`prepared` with its config's auto batch sizes measured and set (each sweep once: a prepared object that
    carries one is not measured again, so the main job's budget and its training share it)."""
    from rich.console import Console

    cfg, sweeps = prepared.cfg, dict(prepared.sweeps)
    todo = [kind for kind, asked in (("train", cfg.auto_batch_size), ("eval", cfg.auto_eval_batch_size))
            if asked and kind not in sweeps]
    for kind in todo:
        cfg, sweeps[kind] = (tuned_train_batch(cfg, prepared, callbacks) if kind == "train"
                             else tuned_eval_batch(cfg, prepared))
        Console().print(sweeps[kind].sentence(), markup=False)
    return dataclasses.replace(prepared, cfg=cfg, sweeps=sweeps)
