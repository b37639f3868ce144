"""A time budget for the main job: measure this machine's training and prediction speed on a few batches, then
size the training set, the evaluation sample and the baselines so that the whole job fits.

`measure(cfg)` trains 4 steps and predicts 2 batches through the same assembly as a run (`trainer.prepare`,
`make_trainer`), timing the steps after the first; `plan(cfg, rates, budget_s)` returns the sized config and one
sentence ("about 9 minutes on this CPU: 3,600 training examples, ..."). Without a budget the same estimate is
printed for the config as it is.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass

from ..core.errors import SentituneError
from ..run.config import TrainConfig

DEFAULT_TIME_BUDGET = "10m"  # the main job's: a demo that fits a coffee break on a 2-core CPU
# the share of the budget the estimate may fill: its training rate, from a few steps, read 9% above what a whole
# epoch ran at (AMX Xeon: 32.2 against 29.6 examples/s)
BUDGET_FILL = 0.85
MIN_PER_CLASS = 100  # below this a test sample cannot tell a fine-tuned model from its baselines
MAX_EPOCHS = 10.0  # the most passes the budget gives a small data set
EVALS_PER_RUN = 5  # four periodic validation passes and the final one
# TF-IDF + LR's cross-validated fit per training example, VADER per test example (rough, from the main job's logs)
TFIDF_FIT_EXAMPLES_PER_S, VADER_EXAMPLES_PER_S = 200.0, 600.0


def parse_duration(text: str | None, flag: str = "--time-budget") -> float | None:
    """Seconds from `90s`, `10m`, `1.5h` or a bare number of seconds; None for None/`none`/`0`. `flag` names the
    option in the error line."""
    if text is None or str(text).strip().lower() in {"", "none", "0", "off"}:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text).lower())
    if not match:
        raise SentituneError(f"{flag} {text}: use a duration such as 600s, 10m or 1.5h (or none).")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@dataclass
class Rates:
    """Examples per second on this machine, measured with the run's own settings."""

    train: float
    predict: float
    overhead_s: float
    cpu: str
    precision: str
    rows: dict = dataclasses.field(default_factory=dict)  # train/validation/test rows of the prepared data
    available: dict = dataclasses.field(default_factory=dict)  # split: {class id: rows before sampling}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def measure(cfg: TrainConfig, steps: int = 8, prepared=None) -> Rates:
    """Train `steps` steps and predict two batches of the run's data (`prepared`: as `training.trainer.prepare`
    returned it for `cfg`, when the caller has it); rates from the steps after the first. A batch-size sweep the
    prepared data carries (`--batch-size auto`) gives its measured rate instead: nothing is measured twice."""
    from ..inference.predict import logits_for_ids
    from ..training.autobatch import training_rate
    from ..training.trainer import new_model, prepare

    started = time.perf_counter()
    prepared = prepared or prepare(cfg)
    probe = dataclasses.replace(prepared.cfg, max_steps=steps, eval_steps=10**9, early_stopping_patience=0,
                                logging_steps=10**9)
    sweeps = prepared.sweeps
    train = sweeps["train"].chosen_rate if "train" in sweeps else training_rate(probe, prepared, skip=2)
    per_step = probe.batch_size * probe.gradient_accumulation
    overhead = max(0.0, time.perf_counter() - started - steps * per_step / train)  # loading, tokenizing, set-up
    model = new_model(probe, prepared)
    if "eval" in sweeps:
        predict = sweeps["eval"].chosen_rate
    else:
        ids = prepared.tokenized(probe)["test"]["input_ids"][: 4 * probe.eval_batch_size]
        pad = prepared.tokenizer.pad_token_id or 0
        # the first batches of a shape pay for building its kernels: a warm-up pass, then the timed one
        logits_for_ids(model, ids, pad, probe.eval_batch_size, prepared.runtime)
        begun = time.perf_counter()
        logits_for_ids(model, ids, pad, probe.eval_batch_size, prepared.runtime)
        predict = len(ids) / (time.perf_counter() - begun)
    return Rates(train=train, predict=predict,
                 overhead_s=overhead, cpu=prepared.runtime.cpu.summary(), precision=prepared.runtime.precision,
                 rows={split: len(prepared.splits[split]) for split in ("train", "validation", "test")},
                 available=prepared.report.get("available", {}))


def rows_of(per_class: int | None, available: dict, n_classes: int, fallback: int = 0) -> int:
    """Rows a per-class sample takes from classes of `available` sizes (all of a short class; `n_classes` full
    classes when the sizes are unknown), or `fallback` without a per-class size."""
    if not per_class:
        return fallback
    return sum(min(per_class, n) for n in available.values()) if available else per_class * n_classes


@dataclass
class Plan:
    """The sized job: config, estimated seconds per part, and whether the budget forced it smaller."""

    cfg: TrainConfig
    probe_per_class: int
    seconds: dict
    budget_s: float | None
    shrunk: bool  # the budget changed the config (smaller, or a larger training set)
    rates: Rates
    asked_train_per_class: int | None = None

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())

    def sentence(self, n_classes: int = 2) -> str:
        d, rows, available = self.cfg.data, self.rates.rows, self.rates.available
        train = rows_of(d.train_per_class, available.get("train"), n_classes, d.train_examples or rows.get("train"))
        test = rows_of(d.test_per_class, available.get("test"), n_classes, rows.get("test"))
        train = f"{train:,} training examples" if train else "all training examples"
        test = f"{test:,} test examples" if test else "the whole test split"
        budget = f" (budget {self.budget_s / 60:.0f} min{self.resized})" if self.budget_s else ""
        epochs = f" for {self.cfg.epochs:g} epochs" if self.cfg.epochs != 1 else ""
        return (f"about {math.ceil(self.total_s / 60)} minutes on this CPU ({self.rates.cpu}, {self.rates.precision}): "
                f"{train}{epochs}, {test}, probe {self.probe_per_class * n_classes:,}{budget}; training "
                f"{self.rates.train:.1f} ex/s, prediction {self.rates.predict:.0f} ex/s, measured on a few batches.")

    @property
    def resized(self) -> str:
        """How the budget changed the job, for its sentence: ', sized down to fit', ', grown to fill it' or ''."""
        if not self.shrunk:
            return ""
        asked, sized = self.asked_train_per_class, self.cfg.data.train_per_class
        pool = self.rates.available.get("train")
        if pool and sized and sized >= max(pool.values()):
            return ", every training row"
        return ", grown to fill it" if asked and sized and sized > asked else ", sized down to fit"

    def to_dict(self) -> dict:
        d = self.cfg.data
        return {"budget_s": self.budget_s, "estimate_s": round(self.total_s), "shrunk": self.shrunk,
                "seconds": {k: round(v) for k, v in self.seconds.items()}, "rates": self.rates.to_dict(),
                "train_per_class": d.train_per_class, "validation_per_class": d.validation_per_class,
                "test_per_class": d.test_per_class, "probe_per_class": self.probe_per_class}


def seconds_for(cfg: TrainConfig, probe_per_class: int, rates: Rates, n_classes: int, baselines) -> dict:
    """Estimated seconds of each part of the main job for `cfg` (sizes per class, or the prepared data's rows)."""
    d, rows, available = cfg.data, rates.rows, rates.available
    train = rows_of(d.train_per_class, available.get("train"), n_classes, d.train_examples or rows.get("train", 0))
    train *= cfg.epochs
    validation = rows_of(d.validation_per_class, available.get("validation"), n_classes, rows.get("validation", 0))
    test = rows_of(d.test_per_class, available.get("test"), n_classes, rows.get("test", 0))
    parts = {"setup": rates.overhead_s * 2, "train": train / rates.train,
             "validation": EVALS_PER_RUN * validation / rates.predict, "test": test / rates.predict}
    if "base" in baselines:
        parts["base baselines"] = (probe_per_class * n_classes + test) / rates.predict
    parts["other baselines"] = (train / TFIDF_FIT_EXAMPLES_PER_S if "tfidf" in baselines else 0) + \
        (test / VADER_EXAMPLES_PER_S if "vader" in baselines else 0)
    if cfg.self_distill != "none":  # the run labels train + unlabelled texts; the student trains one epoch on them
        taught = train / cfg.epochs + cfg.self_distill_texts
        parts["self-distill"] = taught / rates.predict + taught / rates.train + parts["validation"] + parts["test"]
    return parts


def plan(cfg: TrainConfig, rates: Rates, budget_s: float | None, n_classes: int = 2, probe_per_class: int = 500,
         baselines=("majority", "tfidf", "vader", "base")) -> Plan:
    """`cfg` sized to `budget_s`: evaluation sizes first shrink toward MIN_PER_CLASS, then the training set takes
    what is left. Needs per-class sizes in the config (the cpu-quick preset has them)."""
    d = cfg.data
    if not (d.train_per_class and d.test_per_class and d.validation_per_class):
        return plan_by_examples(cfg, rates, budget_s, n_classes, probe_per_class, baselines)
    sized, probe = cfg, probe_per_class
    for _ in range(6):  # evaluation at most ~35% of the budget: halve the samples until it fits
        parts = seconds_for(sized, probe, rates, n_classes, baselines)
        evaluation = parts["validation"] + parts["test"] + parts.get("base baselines", 0) + parts["other baselines"]
        if budget_s is None or evaluation <= 0.35 * budget_s or sized.data.test_per_class <= MIN_PER_CLASS:
            break
        data = dataclasses.replace(sized.data, test_per_class=max(MIN_PER_CLASS, sized.data.test_per_class // 2),
                                   validation_per_class=max(MIN_PER_CLASS // 2, sized.data.validation_per_class // 2))
        sized, probe = dataclasses.replace(sized, data=data), max(MIN_PER_CLASS, probe // 2)
    if budget_s is not None:
        per_class = fitting_train_per_class(sized, probe, rates, n_classes, baselines, budget_s)
        sized = with_epochs_left(with_train_per_class(sized, per_class), probe, rates, n_classes, baselines, budget_s)
    shrunk = sized != cfg or probe != probe_per_class
    return Plan(sized, probe, seconds_for(sized, probe, rates, n_classes, baselines), budget_s, shrunk, rates,
                d.train_per_class)


def with_epochs_left(cfg: TrainConfig, probe: int, rates: Rates, n_classes: int, baselines,
                     budget_s: float) -> TrainConfig:
    """`cfg` with more epochs (in halves, up to MAX_EPOCHS) where its training set already holds every row the
    source has and time is left: a small data set then trains as long as the budget allows, and the best
    checkpoint on validation (with early stopping) picks where it should have stopped."""
    pool = rates.available.get("train") or {}
    if not pool or cfg.data.train_per_class < max(pool.values()):
        return cfg
    epochs = cfg.epochs
    while epochs + 0.5 <= MAX_EPOCHS and sum(seconds_for(dataclasses.replace(cfg, epochs=epochs + 0.5), probe, rates,
                                                          n_classes, baselines).values()) <= BUDGET_FILL * budget_s:
        epochs += 0.5
    return dataclasses.replace(cfg, epochs=epochs)


def with_train_per_class(cfg: TrainConfig, per_class: int) -> TrainConfig:
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_per_class=per_class))


def fitting_train_per_class(cfg: TrainConfig, probe: int, rates: Rates, n_classes: int, baselines,
                            budget_s: float) -> int:
    """The most training examples per class whose estimated job fits BUDGET_FILL of `budget_s`: fewer than the
    config asks for on a slow machine, more (up to every row of the largest class) where time is left, since on a
    short schedule each further example is accuracy (docs/results.md)."""
    def fits(per_class: int) -> bool:
        parts = seconds_for(with_train_per_class(cfg, per_class), probe, rates, n_classes, baselines)
        return sum(parts.values()) <= BUDGET_FILL * budget_s

    pool = rates.available.get("train") or {}
    high = max(pool.values()) if pool else cfg.data.train_per_class
    if not fits(MIN_PER_CLASS):
        raise SentituneError(f"--time-budget {budget_s / 60:.0f}m: this CPU trains {rates.train:.1f} examples/s, so "
                             f"the budget leaves under {MIN_PER_CLASS} training examples per class; give more time.")
    low = MIN_PER_CLASS
    while low < high:  # the largest size that fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def plan_by_examples(cfg: TrainConfig, rates: Rates, budget_s: float | None, n_classes: int, probe_per_class: int,
                     baselines) -> Plan:
    """Data without per-class sizes (whole splits, a stratified `train_examples`): only the training set shrinks."""
    parts = seconds_for(cfg, probe_per_class, rates, n_classes, baselines)
    if budget_s is None or sum(parts.values()) <= budget_s:
        return Plan(cfg, probe_per_class, parts, budget_s, False, rates)
    left = budget_s - sum(v for k, v in parts.items() if k != "train")
    examples = int(max(0.0, left) * rates.train / cfg.epochs)
    if examples < MIN_PER_CLASS * n_classes:
        raise SentituneError(f"--time-budget {budget_s / 60:.0f}m: evaluating this data alone takes about "
                             f"{(budget_s - left) / 60:.0f} minutes on this CPU; give more time or sample the test "
                             "split with --test-per-class.")
    sized = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_examples=examples))
    return Plan(sized, probe_per_class, seconds_for(sized, probe_per_class, rates, n_classes, baselines), budget_s,
                True, rates)


def size_job(prepared, budget_s: float | None, spent_s: float = 0.0, probe_per_class: int = 500,
             baselines=("majority", "tfidf", "vader", "base")) -> Plan:
    """Measure this machine on the prepared data (`training.trainer.prepare`) and size the main job to what is left
    of `budget_s` after the `spent_s` seconds already gone (None: the config as it is, with its estimate)."""
    left = None if budget_s is None else budget_s - spent_s
    return plan(prepared.cfg, measure(prepared.cfg, prepared=prepared), left, prepared.labels.n, probe_per_class,
                baselines)
