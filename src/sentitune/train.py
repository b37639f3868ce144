"""Training stage: from a TrainConfig to a complete run folder, on top of the Hugging Face Trainer.

Flow: prepare data -> load model and tokenizer -> tokenize -> Trainer (bf16, dynamic padding, length
grouping, early stopping, checkpoints) -> predictions on validation and test -> metrics, logs, model
card -> atomic rename of the work folder into runs/<name>/.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import platform
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import get_last_checkpoint

from .config import TrainConfig
from .data import examples_descriptor, prepare_splits, tokenize_splits
from .errors import SentituneError
from .models import load_classifier, load_tokenizer, quiet_transformers, resolve_precision
from .predict import margins_for_ids, sigmoid

log = logging.getLogger("sentitune")
MODEL_COLUMNS = ["input_ids", "attention_mask", "label"]


class JsonlLogger(TrainerCallback):
    """Every Trainer log event as a JSON line (with examples/s) and as TensorBoard scalars."""

    def __init__(self, path: Path, tb_dir: Path, examples_per_step: int):
        self.path, self.tb_dir, self.examples_per_step = path, tb_dir, examples_per_step
        self.writer, self.last = None, (0, time.perf_counter())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.tb_dir))
        step, now = state.global_step, time.perf_counter()
        record = {"step": step, "epoch": state.epoch, **logs}
        if "loss" in logs and step > self.last[0]:
            record["examples_per_s"] = (step - self.last[0]) * self.examples_per_step / (now - self.last[1])
            self.last = (step, now)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in record.items():
            if isinstance(value, (int, float)) and key not in {"step", "epoch"}:
                self.writer.add_scalar(key, value, step)
        self.writer.flush()


class RichProgress(TrainerCallback):
    """A rich progress bar with loss, examples/s and ETA in place of tqdm."""

    def __init__(self, examples_per_step: int):
        self.examples_per_step, self.progress, self.task = examples_per_step, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        if state.is_world_process_zero:
            self.progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                     TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, info="")
            self.start = (state.global_step, time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress:
            rate = (state.global_step - self.start[0]) * self.examples_per_step / max(time.perf_counter() - self.start[1], 1e-9)
            loss = next((f"{h['loss']:.3f}" for h in reversed(state.log_history) if "loss" in h), "-")  # none logged yet
            self.progress.update(self.task, completed=state.global_step, info=f"loss {loss} | {rate:.1f} ex/s")

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.progress and metrics:
            self.progress.console.print(f"step {state.global_step}: validation accuracy {metrics.get('eval_accuracy', 0):.4f} f1 {metrics.get('eval_f1', 0):.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress:
            self.progress.stop()


class KillAfterCheckpoint(TrainerCallback):
    """Test hook: SIGKILL this process right after the checkpoint of step N is written (a real `kill -9`)."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def eval_metrics(eval_pred) -> dict:
    """Accuracy and F1 for the Trainer's periodic validation (the full set comes at the end)."""
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(-1)
    return {"accuracy": accuracy_score(labels, preds), "f1": f1_score(labels, preds)}


def class_weight_loss(train_labels: np.ndarray):
    """A loss for Trainer's `compute_loss_func` that weights classes by inverse frequency."""
    counts = np.bincount(train_labels, minlength=2)
    weight = torch.tensor(len(train_labels) / (2 * np.maximum(counts, 1)), dtype=torch.float32)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"].float()
        return torch.nn.functional.cross_entropy(logits, labels, weight=weight.to(logits.device))

    return loss


def training_arguments(cfg: TrainConfig, work_dir: Path, precision: str, train_size: int) -> TrainingArguments:
    """Trainer settings derived from the config: evaluation cadence, precision, sampling, checkpoints."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    steps_per_epoch = math.ceil(train_size / (cfg.batch_size * cfg.gradient_accumulation * world))
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    eval_steps = cfg.eval_steps or max(1, min(total, steps_per_epoch) // 4)
    return TrainingArguments(
        output_dir=str(work_dir / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio, lr_scheduler_type=cfg.scheduler,
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not torch.cuda.is_available(),
        eval_strategy="steps", eval_steps=eval_steps, save_strategy="steps", save_steps=eval_steps,
        save_total_limit=cfg.save_total_limit, load_best_model_at_end=True, metric_for_best_model="f1",
        greater_is_better=True, logging_steps=cfg.logging_steps, report_to="none", disable_tqdm=True,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        seed=cfg.seed, data_seed=cfg.seed, dataloader_num_workers=0,
        ddp_backend="gloo" if not torch.cuda.is_available() and world > 1 else None,
    )


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
    kwargs["params"] = [{"params": params, "weight_decay": cfg.weight_decay if decays else 0.0,
                         "lr": cfg.learning_rate * cfg.layer_lr_decay ** (n_layers + 1 - depth)}
                        for (depth, decays), params in sorted(groups.items(), reverse=True)]  # top first: the rate Trainer logs
    return optimizer_cls, kwargs


def build_trainer(cfg: TrainConfig, model, tokenizer, tokenized, precision: str, work_dir: Path) -> Trainer:
    """A Hugging Face Trainer wired with sentitune's callbacks, collator and (optional) class weights."""
    train_set = tokenized["train"].select_columns(MODEL_COLUMNS)
    args = training_arguments(cfg, work_dir, precision, len(train_set))
    per_step = cfg.batch_size * cfg.gradient_accumulation * args.world_size
    callbacks = [JsonlLogger(work_dir / "log.jsonl", work_dir / "tb", per_step), RichProgress(per_step)]
    if cfg.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    if os.environ.get("SENTITUNE_KILL_AFTER_STEP"):
        callbacks.append(KillAfterCheckpoint(int(os.environ["SENTITUNE_KILL_AFTER_STEP"])))
    trainer = Trainer(
        model=model, args=args, train_dataset=train_set,
        eval_dataset=tokenized["validation"].select_columns(MODEL_COLUMNS),
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8), processing_class=tokenizer,
        compute_metrics=eval_metrics, callbacks=callbacks,
        compute_loss_func=class_weight_loss(np.asarray(tokenized["train"]["label"])) if cfg.class_weights else None,
        optimizer_cls_and_kwargs=layerwise_optimizer(cfg, model, args) if cfg.layer_lr_decay != 1.0 else None,
    )
    trainer.remove_callback(PrinterCallback)  # the JSONL log and the progress bar say it already
    return trainer


def run_paths(cfg: TrainConfig, resume: bool, overwrite: bool) -> tuple[Path, Path]:
    """The final run folder and the work folder it is built in (renamed into place only when complete).

    Only checks and clears: the work folder is created once data and model have loaded, so bad input
    never leaves a half-made run behind."""
    run_dir = Path(cfg.output_dir) / cfg.name
    work_dir = Path(cfg.output_dir) / f".{cfg.name}.partial"
    if _rank() != 0:  # under DDP only rank 0 owns the folders
        return run_dir, work_dir
    if run_dir.exists() and not overwrite:
        raise SentituneError(f"{run_dir}: a finished run already exists; pass --name to choose another or --overwrite to replace it.")
    if work_dir.exists() and not resume:
        if not overwrite:
            raise SentituneError(f"{work_dir}: an interrupted run exists; pass --resume to continue it or --overwrite to start over.")
        shutil.rmtree(work_dir)
    if resume and not work_dir.exists():
        raise SentituneError(f"--resume: nothing to resume at {work_dir}; run without --resume.")
    return run_dir, work_dir


def _rank() -> int:
    return int(os.environ.get("RANK", 0))


def hardware() -> dict:
    """What the run ran on, for the report and the model card."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def predictions_frame(model, tokenizer, splits, tokenized, cfg: TrainConfig, precision: str) -> tuple[pd.DataFrame, dict]:
    """Per-example predictions on validation and test (the table every later stage reads), and the test inference speed."""
    frames, speed = [], {}
    for split in ("validation", "test"):
        ds, tok = splits[split], tokenized[split]
        started = time.perf_counter()
        margin = margins_for_ids(model, tok["input_ids"], tokenizer.pad_token_id or 0, cfg.eval_batch_size, precision)
        speed = {"examples_per_s": len(ds) / (time.perf_counter() - started), "split": split, "batch_size": cfg.eval_batch_size, "precision": precision}
        prob = sigmoid(margin)
        frames.append(pd.DataFrame({
            "split": split, "idx": ds["idx"], "text": ds["text"], "label": ds["label"], "prob": prob,
            "pred": (prob >= 0.5).astype(int), "margin": margin, "n_tokens": tok["n_tokens"], "truncated": tok["truncated"],
            "rating": ds["rating"] if "rating" in ds.column_names else [-1] * len(ds),
        }))
    return pd.concat(frames, ignore_index=True), speed


def run_metrics(preds: pd.DataFrame, splits, cfg: TrainConfig, train_stats: dict, data_report: dict, inference: dict) -> dict:
    """metrics.json: full metrics on validation and test, the examples used, and training facts."""
    from .evaluate import classification_metrics

    out = {}
    for split in ("validation", "test"):
        part = preds[preds.split == split]
        out[split] = classification_metrics(part["label"].to_numpy(), part["prob"].to_numpy())
    out["examples"] = {s: examples_descriptor(splits[s], s, cfg.data) for s in ("validation", "test")}
    out["train"] = train_stats
    out["inference"] = inference
    out["data"] = {k: v for k, v in data_report.items() if k != "config"}
    return out


def save_model(trainer: Trainer, tokenizer, cfg: TrainConfig, model_dir: Path) -> None:
    """save_pretrained model + tokenizer, with the preprocessing that `predict` and `pipeline()` need."""
    model = trainer.model
    model.config.sentitune = {"max_length": cfg.max_length, "truncation": cfg.truncation}
    tokenizer.model_max_length = cfg.max_length
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Fine-tune `cfg.model` on `cfg.data` and return the finished run folder (None on DDP ranks other than 0)."""
    quiet_transformers()
    run_dir, work_dir = run_paths(cfg, resume, overwrite)
    splits, data_report = prepare_splits(cfg.data)
    tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
    set_seed(cfg.seed)  # the new head's initialisation must not depend on what ran earlier in the process
    model = load_classifier(cfg.model, cfg.dropout, cfg.attention_dropout, cfg.trust_remote_code, cfg.attention)
    tokenized = tokenize_splits(splits, tokenizer, cfg.max_length, cfg.truncation, use_cache=_rank() == 0)
    if _rank() == 0:
        work_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(work_dir / "config.yaml")
    precision = resolve_precision(cfg.precision)
    trainer = build_trainer(cfg, model, tokenizer, tokenized, precision, work_dir)
    checkpoint = get_last_checkpoint(str(work_dir / "checkpoints")) if resume and (work_dir / "checkpoints").is_dir() else None
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    wall = time.perf_counter() - started
    if not trainer.is_world_process_zero():
        return None
    preds, inference = predictions_frame(trainer.model, tokenizer, splits, tokenized, cfg, precision)
    stats = {"wall_time_s": wall, "train_examples_per_s": result.metrics.get("train_samples_per_second"),
             "train_samples": len(tokenized["train"]), "steps": trainer.state.global_step,
             "best_step": _best_step(trainer), "resumed_from": Path(checkpoint).name if checkpoint else None,
             "precision": precision, "hardware": hardware(), "train_loss": result.metrics.get("train_loss")}
    metrics = run_metrics(preds, splits, cfg, stats, data_report, inference)
    preds.to_parquet(work_dir / "predictions.parquet", index=False)
    (work_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    save_model(trainer, tokenizer, cfg, work_dir / "model")
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
    _write_card(work_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    work_dir.rename(run_dir)
    return run_dir


def _best_step(trainer: Trainer) -> int | None:
    best = trainer.state.best_model_checkpoint
    return int(best.rsplit("-", 1)[-1]) if best else None


def _write_card(run_dir: Path) -> None:
    from .card import write_model_card

    write_model_card(run_dir)
