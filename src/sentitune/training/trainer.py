"""The one training assembly: `prepare(cfg)` (data, labels, tokenizer, runtime, tokens) and
`make_trainer(cfg, prepared, model, out_dir, callbacks)` (a Hugging Face Trainer with sentitune's settings).

`train.train()`, the tuner's trials and the benchmark scripts all build their Trainer here, so a trial or a
benchmark arm runs exactly what a run does; what differs is only the callbacks they pass in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from ..core.errors import SentituneError
from ..core.extras import install_hint, installed
from ..core.labels import LabelScheme
from ..core.machine import Runtime
from ..core.preemption import Preemption
from ..data import decided_max_length, prepare_splits, tokenize_splits
from ..models.loading import load_classifier, load_tokenizer, quiet_transformers
from ..run.config import TrainConfig, TrainingConfig
from ..run.folder import RunFolder

log = logging.getLogger("sentitune")
MODEL_COLUMNS = ["input_ids", "attention_mask", "label"]


@dataclass
class Prepared:
    """Everything a Trainer needs that does not change between runs of one config: data, labels, tokens, runtime."""

    cfg: TrainConfig
    splits: object
    report: dict
    labels: LabelScheme
    tokenizer: object
    runtime: Runtime
    _tokenized: dict = field(default_factory=dict, repr=False)
    use_cache: bool = True
    sweeps: dict = field(default_factory=dict)  # "train"/"eval": the batch-size sweeps `--batch-size auto` measured

    def tokenized(self, cfg: TrainConfig | None = None):
        """The splits tokenized at `cfg`'s length and truncation (the prepared config's by default), cached."""
        cfg = cfg or self.cfg
        key = (cfg.max_length, cfg.truncation)
        if key not in self._tokenized:
            self._tokenized[key] = tokenize_splits(self.splits, self.tokenizer, cfg.max_length, cfg.truncation,
                                                   use_cache=self.use_cache)
        return self._tokenized[key]


def rank() -> int:
    """This process's rank under torchrun/accelerate (0 when not distributed)."""
    return int(os.environ.get("RANK", 0))


def resolve_max_length(cfg: TrainConfig, texts, tokenizer, report: dict) -> TrainConfig:
    """`cfg` with max_length decided (`data.decided_max_length`); the report records the value and why."""
    report["max_length"] = decided_max_length(cfg.max_length, texts, tokenizer)
    if cfg.max_length is None:
        log.info("max_length %d: %s", report["max_length"]["value"], report["max_length"]["source"])
    return dataclasses.replace(cfg, max_length=report["max_length"]["value"])


def prepare(cfg: TrainConfig, frames: dict | None = None) -> Prepared:
    """Read and split the data (`frames`: the source already read), infer the labels, load the tokenizer, fix
    max_length and the runtime policy."""
    quiet_transformers()
    splits, report = prepare_splits(cfg.data, frames)
    tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
    cfg = resolve_max_length(cfg, splits["train"]["text"], tokenizer, report)
    runtime = Runtime.resolve(cfg.precision, cfg.attention)
    return Prepared(cfg, splits, report, LabelScheme.from_dict(report["labels"]), tokenizer, runtime,
                    use_cache=rank() == 0)


def new_model(cfg: TrainConfig, prepared: Prepared):
    """A freshly loaded classifier for `cfg`, seeded first so the new head never depends on what ran before."""
    set_seed(cfg.seed)
    return load_classifier(cfg.model, prepared.labels, cfg.dropout, cfg.attention_dropout, cfg.trust_remote_code,
                           prepared.runtime.attention)


IMBALANCED_SHARE = 0.3  # a class below this share of two makes the positive class's F1 a poor guide


def selection_metric(cfg: TrainConfig, labels: LabelScheme, shares: dict | None = None) -> str:
    """The validation metric that picks checkpoints: F1 of the positive class for two balanced classes, macro F1
    for imbalanced two-class data (`shares`: the train split's class shares) and for more classes."""
    if cfg.selection_metric != "auto":
        return cfg.selection_metric
    balanced = not shares or min(shares.values()) >= IMBALANCED_SHARE
    return "f1" if labels.binary and balanced else "f1_macro"


def train_shares(prepared: Prepared) -> dict | None:
    """The train split's class shares, as the data report recorded them."""
    return prepared.report.get("class_shares", {}).get("train")


def eval_metrics(eval_pred) -> dict:
    """Accuracy, macro F1/recall (and binary F1) for the Trainer's periodic validation."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(-1)
    out = {"accuracy": accuracy_score(labels, preds), "f1_macro": f1_score(labels, preds, average="macro"),
           "recall_macro": recall_score(labels, preds, average="macro")}
    if np.asarray(logits).shape[-1] == 2:
        out["f1"] = f1_score(labels, preds)
    return out


def class_weight_loss(train_labels: np.ndarray, n_classes: int | None = None):
    """A loss for Trainer's `compute_loss_func` that weights classes by inverse frequency."""
    n_classes = n_classes or int(np.max(train_labels)) + 1
    counts = np.bincount(train_labels, minlength=n_classes)
    weight = torch.tensor(len(train_labels) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"].float()
        return torch.nn.functional.cross_entropy(logits, labels, weight=weight.to(logits.device))

    return loss


def checkpoint_every(cfg: TrainingConfig, train_size: int, every: int = 0) -> int:
    """Steps between checkpoints (and evaluations): `every`, or about four per epoch."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    steps_per_epoch = math.ceil(train_size / (cfg.batch_size * cfg.gradient_accumulation * world))
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    return every or max(1, min(total, steps_per_epoch) // 4)


def shared_arguments(cfg: TrainingConfig, checkpoints: Path, runtime: Runtime, every: int,
                     train_size: int) -> dict:
    """The TrainingArguments every kind of training derives alike from its config: the optimiser and schedule,
    checkpoints every `every` steps, seeds and the runtime's precision."""
    return dict(
        output_dir=str(checkpoints), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio, lr_scheduler_type=cfg.scheduler, save_strategy="steps", save_steps=every,
        save_total_limit=cfg.save_total_limit,
        # a log at every checkpoint, so a resumed run's restored history covers every step before it
        logging_steps=math.gcd(cfg.logging_steps, every), report_to="none", disable_tqdm=True,
        seed=cfg.seed, data_seed=cfg.seed, dataloader_num_workers=0, **runtime_arguments(runtime))


def training_arguments(cfg: TrainConfig, checkpoints: Path, runtime: Runtime, train_size: int,
                       metric: str = "f1") -> TrainingArguments:
    """Trainer settings derived from the config: evaluation cadence, precision, sampling, checkpoints."""
    every = checkpoint_every(cfg, train_size, cfg.eval_steps)
    return TrainingArguments(
        **shared_arguments(cfg, checkpoints, runtime, every, train_size),
        per_device_eval_batch_size=cfg.eval_batch_size, eval_strategy="steps", eval_steps=every,
        load_best_model_at_end=cfg.keeps_best, metric_for_best_model=metric, greater_is_better=True,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random")


def runtime_arguments(runtime: Runtime) -> dict:
    """The TrainingArguments the runtime policy decides: precision, CPU or not, the DDP backend on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    return {"bf16": runtime.precision == "bf16", "fp16": runtime.precision == "fp16", "use_cpu": runtime.on_cpu,
            "ddp_backend": "gloo" if runtime.on_cpu and world > 1 else None}


def layer_depth(name: str, n_layers: int) -> int:
    """0 for embeddings, i + 1 for encoder layer i, n_layers + 1 for everything above (pooler, head)."""
    if "embeddings" in name:
        return 0
    match = re.search(r"\.layers?\.(\d+)\.", name)
    return int(match.group(1)) + 1 if match else n_layers + 1


def layerwise_optimizer(cfg: TrainConfig, model, args: TrainingArguments) -> tuple[type, dict]:
    """Trainer's own optimizer and settings, with one parameter group per (depth, weight decay) whose learning
    rate is `learning_rate * layer_lr_decay ** (distance from the top)` (Howard & Ruder 2018; Sun et al. 2019)."""
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    n_layers = getattr(model.config, "num_hidden_layers", 0)
    decay_names = set(Trainer.get_decay_parameter_names(None, model))  # uses no Trainer state
    groups: dict[tuple[int, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((layer_depth(name, n_layers), name in decay_names), []).append(param)
    # top first: the rate Trainer logs is the first group's
    kwargs["params"] = [{"params": params, "weight_decay": cfg.weight_decay if decays else 0.0,
                         "lr": cfg.learning_rate * cfg.layer_lr_decay ** (n_layers + 1 - depth)}
                        for (depth, decays), params in sorted(groups.items(), reverse=True)]
    return optimizer_cls, kwargs


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """Length grouping whose shuffle depends only on (seed, epoch). Trainer's own sampler draws from the global
    RNG when an epoch starts; a run resumed in a later epoch cannot restore that state in time, so its batches
    (and its weights) differed from an uninterrupted run's."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:  # called by accelerate's data loader at every epoch, resumed or not
        self.epoch = epoch

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


class LateEarlyStopping(EarlyStoppingCallback):
    """Early stopping whose patience counts only evaluations from `start` (a share of the steps) on. Earlier the
    learning rate is near its peak and validation scores dip and recover: a two-epoch IMDB run stopped at step
    1,800 of 2,802 on dips taken at 72-50% of the peak rate (docs/results.md). Which checkpoint is kept is still
    the best on validation."""

    def __init__(self, patience: int, start: float):
        super().__init__(early_stopping_patience=patience)
        self.start = start

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        super().on_evaluate(args, state, control, metrics, **kwargs)
        if state.global_step < self.start * state.max_steps:
            self.early_stopping_patience_counter = 0
            control.should_training_stop = False


class SentimentTrainer(Trainer):
    """Trainer with one change: a length-grouped sampler that a resume restores exactly."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or dataset is None:
            return super()._get_train_sampler(train_dataset)
        lengths = [len(ids) for ids in dataset["input_ids"]]
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return EpochSeededLengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                               lengths, seed)


class Recipe:
    """What a kind of training brings to the one assembly: its model, its training set and its Trainer. Fine-tuning
    is this class as it is; distillation (`sentitune.training.distill`) brings a student, soft labels and their loss."""

    def model(self, cfg: TrainConfig, prepared: Prepared):
        """The model to train, once the recipe's own inputs are checked against `prepared` (nothing is written yet)."""
        return new_model(cfg, prepared)

    def train_set(self, cfg: TrainConfig, prepared: Prepared, out_dir: Path):
        """The tokenized training examples; `out_dir` (the work folder) may hold what they cost to make."""
        return prepared.tokenized(cfg)["train"].select_columns(MODEL_COLUMNS)

    def trainer(self, **kwargs) -> Trainer:
        return SentimentTrainer(**kwargs)

    def facts(self) -> dict:
        """Entries the recipe adds to metrics.json."""
        return {}


FINE_TUNE = Recipe()


def make_trainer(cfg: TrainConfig, prepared: Prepared, model, out_dir: Path, callbacks=(),
                 recipe: Recipe = FINE_TUNE) -> Trainer:
    """A Hugging Face Trainer for `cfg` (checkpoints under `out_dir/checkpoints`) with the given callbacks,
    early stopping when the config asks for it, dynamic padding and optional class weights; `recipe` supplies the
    training set and the Trainer class."""
    tokenized = prepared.tokenized(cfg)
    train_set = recipe.train_set(cfg, prepared, Path(out_dir))
    metric = selection_metric(cfg, prepared.labels, train_shares(prepared))
    args = training_arguments(cfg, Path(out_dir) / "checkpoints", prepared.runtime, len(train_set), metric)
    callbacks = list(callbacks)
    if cfg.early_stopping_patience > 0 and cfg.keeps_best:
        callbacks.append(LateEarlyStopping(cfg.early_stopping_patience, cfg.early_stopping_from))
    labels = np.asarray(tokenized["train"]["label"])
    trainer = recipe.trainer(
        model=model, args=args, train_dataset=train_set,
        eval_dataset=tokenized["validation"].select_columns(MODEL_COLUMNS),
        data_collator=DataCollatorWithPadding(prepared.tokenizer, pad_to_multiple_of=8),
        processing_class=prepared.tokenizer, compute_metrics=eval_metrics, callbacks=callbacks,
        compute_loss_func=class_weight_loss(labels, prepared.labels.n) if cfg.class_weights else None,
        optimizer_cls_and_kwargs=layerwise_optimizer(cfg, model, args) if cfg.layer_lr_decay != 1.0 else None,
    )
    trainer.remove_callback(PrinterCallback)  # the JSONL log and the progress bar say it already
    return trainer


def examples_per_step(cfg: TrainConfig, trainer: Trainer | None = None) -> int:
    world = trainer.args.world_size if trainer is not None else int(os.environ.get("WORLD_SIZE", 1))
    return cfg.batch_size * cfg.gradient_accumulation * world


# ---------------------------------------------------------------- the work folder a run is built in


def check_folders(cfg: TrainConfig, resume: bool, overwrite: bool) -> tuple[RunFolder, RunFolder]:
    """The final run folder and the work folder it is built in. Only checks and clears: the work folder is
    created once data and model have loaded, so bad input never leaves a half-made run behind."""
    final = RunFolder.of(cfg.output_dir, cfg.name)
    work = final.work
    if rank() != 0:  # under DDP only rank 0 owns the folders
        return final, work
    if final.path.exists() and not overwrite:
        raise SentituneError(f"{final.path}: a finished run already exists; pass --name to choose another or "
                             "--overwrite to replace it.")
    if work.path.exists() and not resume:
        if not overwrite:
            raise SentituneError(f"{work.path}: an interrupted run exists; pass --resume to continue it or "
                                 "--overwrite to start over.")
        shutil.rmtree(work.path)
    if resume and not work.path.exists():  # killed before anything was written: rerunning is resuming
        log.info("--resume: nothing to resume at %s; starting the run.", work.path)
    return final, work


@contextlib.contextmanager
def exclusive(final: RunFolder):
    """Hold an exclusive lock on the run's name, so two runs of the same --name never share a work folder."""
    if rank() != 0:
        yield
        return
    final.path.parent.mkdir(parents=True, exist_ok=True)
    lock = final.path.with_name(f".{final.name}.lock")
    with lock.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SentituneError(f"--name {final.name}: another sentitune process is training this run now; "
                                 "wait for it or pass another --name.") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest checkpoint that holds its trainer state (a kill mid-save leaves one without)."""
    if not checkpoints.is_dir():
        return None
    complete = [p for p in checkpoints.glob("checkpoint-*") if _readable_state(p / "trainer_state.json")
                and p.name.split("-")[-1].isdigit()]
    # none complete (a kill or a full disk during the first save): training starts over, as a resume of nothing
    return str(max(complete, key=lambda p: int(p.name.split("-")[-1]))) if complete else None


def _readable_state(path: Path) -> bool:
    """Whether a checkpoint's trainer state is whole (a full disk can cut it short)."""
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


# ---------------------------------------------------------------- callbacks a run adds


class JsonlLogger(TrainerCallback):
    """Every Trainer log event as a JSON line (with examples/s) and, with the package tensorboard (the extra
    `sentitune[tensorboard]`), as TensorBoard scalars."""

    def __init__(self, path: Path, tb_dir: Path, examples_per_step: int):
        self.path, self.tb_dir, self.examples_per_step = Path(path), Path(tb_dir), examples_per_step
        self.writer, self.last = None, (0, time.perf_counter())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if self.writer is None:
            self.writer = _tensorboard_writer(self.tb_dir)
        step, now = state.global_step, time.perf_counter()
        record = {"step": step, "epoch": state.epoch, **logs}
        if "loss" in logs and step > self.last[0]:
            record["examples_per_s"] = (step - self.last[0]) * self.examples_per_step / (now - self.last[1])
            self.last = (step, now)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if not self.writer:
            return
        for key, value in record.items():
            if isinstance(value, (int, float)) and key not in {"step", "epoch"}:
                self.writer.add_scalar(key, value, step)
        self.writer.flush()


def _tensorboard_writer(folder: Path):
    """A TensorBoard writer into `folder`, or False without the package: log.jsonl holds the same numbers."""
    if not installed("tensorboard"):
        log.info("%s: no TensorBoard events (%s); log.jsonl has the numbers.", folder, install_hint("tensorboard"))
        return False
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder))


class StopOnPreemption(TrainerCallback):
    """SIGTERM during the Trainer's loop (a `Preemption` deferring it): the step under way finishes, then a log and a
    checkpoint are written at that step (the log keeps a resumed run's loss history whole) and the loop stops."""

    def __init__(self, preemption: Preemption):
        self.preemption = preemption

    def on_step_end(self, args, state, control, **kwargs):
        if self.preemption.requested:
            control.should_log = control.should_save = control.should_training_stop = True


def train_preemptibly(trainer: Trainer, checkpoint: str | None, work: Path):
    """`trainer.train(resume_from_checkpoint=checkpoint)`; under an active `Preemption` (train, distill, adapt) a
    SIGTERM stops it with a checkpoint at the step it arrived in, then ends the process with `Preempted` (exit code
    143, one line on stderr); `--resume` continues from that checkpoint exactly."""
    stop = Preemption.active()
    if stop is None:
        return trainer.train(resume_from_checkpoint=checkpoint)
    trainer.add_callback(StopOnPreemption(stop))
    with stop.deferred():
        result = trainer.train(resume_from_checkpoint=checkpoint)
    if stop.requested:
        saved = last_complete_checkpoint(Path(trainer.args.output_dir))
        raise stop.stopped(f"{Path(saved).name} saved in {work}" if saved else f"no checkpoint yet in {work}")
    return result


class RichProgress(TrainerCallback):
    """A rich progress bar with loss, examples/s and ETA in place of tqdm."""

    def __init__(self, examples_per_step: int, metric: str = "f1"):
        self.examples_per_step, self.metric, self.progress, self.task = examples_per_step, metric, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if state.is_world_process_zero:
            self.progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     transient=False)
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, info="")
            self.start = (state.global_step, time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress:
            seconds = max(time.perf_counter() - self.start[1], 1e-9)
            rate = (state.global_step - self.start[0]) * self.examples_per_step / seconds
            loss = next((f"{h['loss']:.3f}" for h in reversed(state.log_history) if "loss" in h),
                        "-")  # none logged yet
            self.progress.update(self.task, completed=state.global_step, info=f"loss {loss} | {rate:.1f} ex/s")

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.progress and metrics:
            extra = "" if self.metric == "accuracy" else f" {self.metric} {metrics.get('eval_' + self.metric, 0):.4f}"
            self.progress.console.print(f"step {state.global_step}: validation accuracy "
                                        f"{metrics.get('eval_accuracy', 0):.4f}{extra}", markup=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress:
            self.progress.stop()
