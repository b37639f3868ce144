"""Training stage: from a TrainConfig to a complete run folder, on top of the Hugging Face Trainer.

Flow: check the run folder -> prepare data, labels, tokenizer, runtime (`trainer.prepare`) -> load the model ->
Trainer (bf16, dynamic padding, length grouping, early stopping, checkpoints) -> predictions on validation and
test -> metrics, logs, model -> rename of the work folder into runs/<name>/. The model card is written by the
stage that finishes a run (workflow / CLI), so training imports no reporting code.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
from transformers import Trainer

from ..core.io import RESUME_AFTER_FREEING, atomic_dir, disk_space_checked
from ..core.metrics import classification_metrics, softmax
from ..core.preemption import preemptible
from ..data import examples_descriptor, sampling_note
from ..inference.predict import logits_for_ids
from ..models.loading import with_attention
from ..run.config import TrainConfig
from ..run.folder import RunFolder, prediction_columns
from .autobatch import tuned
from .trainer import (
    FINE_TUNE,
    JsonlLogger,
    Prepared,
    Recipe,
    RichProgress,
    check_folders,
    examples_per_step,
    exclusive,
    last_complete_checkpoint,
    make_trainer,
    prepare,
    rank,
    selection_metric,
    train_preemptibly,
    train_shares,
)

log = logging.getLogger("sentitune")


def predictions_frame(model, prepared: Prepared, cfg: TrainConfig) -> tuple[pd.DataFrame, dict]:
    """Per-example predictions on validation and test (the table every later stage reads), and the test speed."""
    frames, speed, tokenized = [], {}, prepared.tokenized(cfg)
    for split in ("validation", "test"):
        ds, tok = prepared.splits[split], tokenized[split]
        started = time.perf_counter()
        logit = logits_for_ids(model, tok["input_ids"], prepared.tokenizer.pad_token_id or 0, cfg.eval_batch_size,
                               prepared.runtime)
        speed = {"examples_per_s": len(ds) / (time.perf_counter() - started), "split": split,
                 "batch_size": cfg.eval_batch_size, "precision": prepared.runtime.precision}
        frames.append(pd.DataFrame({
            "split": split, "idx": ds["idx"], "text": ds["text"], "label": ds["label"],
            **prediction_columns(softmax(logit), logit), "n_tokens": tok["n_tokens"], "truncated": tok["truncated"],
            "rating": ds["rating"] if "rating" in ds.column_names else [-1] * len(ds)}))
    return pd.concat(frames, ignore_index=True), speed


def split_metrics(preds: pd.DataFrame, split: str, prepared: Prepared) -> dict:
    from ..run.folder import probabilities

    part = preds[preds.split == split]
    return classification_metrics(part["label"].to_numpy(), probabilities(part), prepared.labels.names,
                                  prepared.labels.ordinal)


def run_metrics(preds: pd.DataFrame, prepared: Prepared, cfg: TrainConfig, train_stats: dict, inference: dict) -> dict:
    """metrics.json: labels, full metrics on validation and test, the examples used, and training facts."""
    out = {"labels": prepared.labels.to_dict()}
    out |= {split: split_metrics(preds, split, prepared) for split in ("validation", "test")}
    out["examples"] = {s: examples_descriptor(prepared.splits[s], s, cfg.data) for s in ("validation", "test")}
    out["train"] = train_stats
    out["inference"] = inference
    out["data"] = {k: v for k, v in prepared.report.items() if k != "config"}
    return out


def save_model(model, prepared: Prepared, cfg: TrainConfig, model_dir: Path) -> None:
    """save_pretrained model + tokenizer, with the preprocessing that `predict` and `pipeline()` need; written in
    a temporary folder and renamed, so a kill mid-save leaves no model folder that looks whole."""
    model.config.sentitune = {"max_length": cfg.max_length, "truncation": cfg.truncation, "clean": cfg.data.clean,
                              "ordinal": prepared.labels.ordinal}
    prepared.tokenizer.model_max_length = cfg.max_length
    with atomic_dir(model_dir) as tmp:
        model.save_pretrained(str(tmp))
        prepared.tokenizer.save_pretrained(str(tmp))


@preemptible(lambda cfg, *args, **kwargs: f"--name {cfg.name}")
@disk_space_checked(lambda cfg, *args, **kwargs: (f"--name {cfg.name}", Path(cfg.output_dir)), RESUME_AFTER_FREEING)
def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, callbacks=(),
          recipe: Recipe = FINE_TUNE, prepared: Prepared | None = None) -> Path | None:
    """Fine-tune `cfg.model` on `cfg.data` and return the finished run folder (None on DDP ranks other than 0).

    `--resume` continues from wherever a kill stopped the run: the last complete checkpoint, the final save
    (training is not repeated) or the rename into place. `callbacks`: extra `TrainerCallback`s (the tests inject
    a kill -9 here). `recipe`: what differs for another kind of training (distillation's student, soft labels and
    loss). `prepared`: the data and tokenizer for `cfg` when the caller prepared them already (the main job)."""
    final, work = check_folders(cfg, resume, overwrite)
    prepared = tuned(prepared or prepare(cfg))  # bad data or a bad model stop here, before anything is created
    cfg = prepared.cfg  # max_length resolved, auto batch sizes measured
    if note := sampling_note(prepared.report, cfg.data):
        log.warning(note)
    model = recipe.model(cfg, prepared)
    prepared.tokenized(cfg)
    with exclusive(final):
        check_folders(cfg, resume, overwrite)  # again, under the lock: another process may have started meanwhile
        if resume and rank() == 0 and work.is_complete:  # killed while being renamed into place
            return work.finish(final).path
        if rank() == 0:
            work.path.mkdir(parents=True, exist_ok=True)
            work.write_config(cfg)
            if prepared.sweeps:
                work.write_batch_sweep({kind: sweep.to_dict() for kind, sweep in prepared.sweeps.items()})
        weights = work.trained_weights() if resume else None
        if weights is None:
            model, stats = fit(cfg, prepared, model, work, resume, callbacks, recipe)
        elif rank() == 0:  # killed during the final save: training had ended with these weights
            # the same attention kernel as the model that trained, so predictions match an uninterrupted run
            model = with_attention(type(model).from_pretrained(str(weights)), prepared.runtime.attention)
            stats = work.trained()["stats"]
        if rank() != 0:
            return None
        preds, inference = predictions_frame(model, prepared, cfg)
        work.write_predictions(preds)
        work.write_metrics(run_metrics(preds, prepared, cfg, stats, inference) | recipe.facts())
        save_model(model, prepared, cfg, work.model_dir)
        return work.finish(final).path


def fit(cfg: TrainConfig, prepared: Prepared, model, work: RunFolder, resume: bool, callbacks,
        recipe: Recipe = FINE_TUNE) -> tuple:
    """Train (from the last complete checkpoint on resume) and return the chosen model and the training facts
    (None for the model on DDP ranks other than 0); records both in the work folder before the final save."""
    per_step, metric = examples_per_step(cfg), selection_metric(cfg, prepared.labels, train_shares(prepared))
    trainer = make_trainer(cfg, prepared, model, work.path, [JsonlLogger(work.log_path, work.tb_dir, per_step),
                                                             RichProgress(per_step, metric), *callbacks], recipe)
    checkpoint = last_complete_checkpoint(work.checkpoints_dir) if resume else None
    started = time.perf_counter()
    result = train_preemptibly(trainer, checkpoint, work.path)
    if not trainer.is_world_process_zero():
        return None, {}
    stats = {"wall_time_s": time.perf_counter() - started,
             "train_examples_per_s": result.metrics.get("train_samples_per_second"),
             "train_samples": len(trainer.train_dataset), "steps": trainer.state.global_step,
             "best_step": _kept_step(cfg, trainer), "selection_metric": metric,
             "checkpoint": "best" if cfg.keeps_best else "last",
             "resumed_from": Path(checkpoint).name if checkpoint else None,
             "precision": prepared.runtime.precision, "hardware": prepared.runtime.describe(),
             "train_loss": mean_logged_loss(trainer) or result.metrics.get("train_loss")}
    best = trainer.state.best_model_checkpoint if cfg.keeps_best else None
    weights = best or last_complete_checkpoint(work.checkpoints_dir)
    work.write_trained(stats, Path(weights))
    return trainer.model, stats


def mean_logged_loss(trainer: Trainer) -> float | None:
    """The training loss averaged over every logged step, before and after a resume (the Trainer's own
    `train_loss` counts only the last process's steps). Each log covers the steps since the previous one; every
    checkpoint has a log at its step, so the restored history covers the steps before a resume."""
    total, steps, last = 0.0, 0, 0
    for record in trainer.state.log_history:
        if "loss" in record and record["step"] > last:
            covered = record["step"] - last
            total, steps, last = total + record["loss"] * covered, steps + covered, record["step"]
    return total / steps if steps else None


def _kept_step(cfg: TrainConfig, trainer: Trainer) -> int | None:
    """The step whose weights the run keeps: the best on validation, or the last."""
    if not cfg.keeps_best:
        return trainer.state.global_step
    best = trainer.state.best_model_checkpoint
    return int(best.rsplit("-", 1)[-1]) if best else None
