"""Domain adaptation: continued masked-language-model training of a model's encoder on the task's own texts.

`adapt(cfg)` reads the rows `sentitune train` trains and validates on and the unlabelled split when the source has
one (IMDB's 50,000 `unsupervised` reviews); never the test split, and no text identical to a test text. Long texts
are cut into pieces of at most `max_length` tokens at word starts; whole words are masked
(`DataCollatorForLanguageModeling(whole_word_mask=True)`, transformers 5); batches are padded per batch and grouped
by length; device and precision come from `machine.Runtime`, as in training. A slice of the train texts is held
out, masked once, and scored at every checkpoint (MLM loss and perplexity).

The result, `<output_dir>/<name>/`, is a model folder that `sentitune train --model` takes: the MLM model's weights
(its head too; a model saved without one, such as the sentence-transformers default, gets a fresh head, and the
log says so) plus the original's weights the MLM model has no place for (BERT's pooler), so that a classifier built
on it starts from those as it would from the original; the tokenizer; `adapt.json` (steps, tokens/s, losses,
perplexity, texts read) and `adapt.yaml` (this config). It is built in `<output_dir>/.<name>.partial/` with the
Trainer's checkpoints, so `resume=True` goes on from the last one, and renamed into place when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from rich.console import Console
from transformers import (
    DataCollatorForLanguageModeling,
    DataCollatorForTokenClassification,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_callback import PrinterCallback

from ..core.errors import SentituneError
from ..core.io import RESUME_AFTER_FREEING, atomic_write_text, disk_space_checked, read_yaml
from ..core.machine import Runtime
from ..core.preemption import preemptible
from ..data import clean_text, decided_max_length, prepare_frames, read_source, special_tokens_around
from ..models.loading import load_pretrained, load_tokenizer, model_id, quiet_transformers, with_attention
from ..run.config import AdaptConfig, adapt_splits, load_adapt_config, validate_adapt
from ..run.folder import RunFolder, write_json
from .autobatch import StepClock, swept, tokens_per_example
from .trainer import (
    JsonlLogger,
    RichProgress,
    SentimentTrainer,
    check_folders,
    checkpoint_every,
    exclusive,
    last_complete_checkpoint,
    shared_arguments,
    train_preemptibly,
)

log = logging.getLogger("sentitune")
__all__ = ["AdaptConfig", "adapt", "load_adapt_config", "read_adapt_config"]
FACTS, CONFIG = "adapt.json", "adapt.yaml"
HELD_OUT_SHARE = 10  # at most one train text in ten is held out to score


# ---------------------------------------------------------------- texts


@dataclass
class Texts:
    """The texts to adapt on, the held-out ones to score, and what was read and dropped."""

    train: list[str]
    held_out: list[str]
    report: dict


def adapt_texts(cfg: AdaptConfig) -> Texts:
    """The chosen splits' texts, each once, none identical to a test text; a seeded slice of the train texts held
    out to score. The test split is read only to know which texts to keep out."""
    splits = adapt_splits(cfg)
    frames = read_source(cfg.data.data, cfg.data)
    if frames["train"].empty:
        raise SentituneError(f"--data {cfg.data.data}: the train split has no rows; adapt needs the task's texts.")
    labelled, _ = prepare_frames(cfg.data, frames)  # the rows `sentitune train` reads, test held apart alike
    test = set(labelled["test"]["text"]) | set(cleaned(frames["test"]["text"], cfg) if "test" in frames else ())
    read = {"train": [*labelled["train"]["text"], *labelled["validation"]["text"]],
            "unsupervised": cleaned(frames["unsupervised"]["text"], cfg) if "unsupervised" in frames else []}
    seen = set(test)
    kept = {split: unique_outside(read[split], seen) for split in splits}
    pool = "train" if "train" in kept else splits[0]
    kept[pool], held_out = hold_out(kept[pool], cfg.eval_texts, cfg.seed)
    train = [t for split in splits for t in kept[split]]
    if not train:
        raise SentituneError(f"--data {cfg.data.data}: no texts left to adapt on in {', '.join(splits)} "
                             "(after dropping duplicates and texts of the test split); add texts.")
    report = texts_report(cfg, {s: read[s] for s in splits}, kept, test, pool, len(held_out))
    if "unsupervised" in splits and "unsupervised" not in frames:
        report["unsupervised"] = f"{cfg.data.data} has no unlabelled split"
    log.warning("adapt: %d texts from %s (%s); the test split is never read, and %d texts identical to one of its "
                "%d were dropped; %d %s texts held out to score.", len(train), cfg.data.data,
                ", ".join(f"{s} {n}" for s, n in report["texts"].items()), report["dropped_test_overlap"], len(test),
                len(held_out), pool)
    return Texts(train, held_out, report)


def texts_report(cfg: AdaptConfig, read: dict, kept: dict, test: set, pool: str, held_out: int) -> dict:
    """What adapt.json records of the texts: read, kept per split, held out, and dropped (test copies, repeats)."""
    overlap = sum(t in test for texts in read.values() for t in texts)
    repeats = sum(map(len, read.values())) - sum(map(len, kept.values())) - held_out - overlap
    return {"source": cfg.data.data, "splits": list(read), "texts": {s: len(k) for s, k in kept.items()},
            "held_out": held_out, "held_out_from": pool, "test_texts_kept_out": len(test),
            "dropped_test_overlap": overlap, "dropped_duplicates": repeats}


def unique_outside(texts: list[str], seen: set) -> list[str]:
    """The texts not in `seen`, each once; `seen` grows by them."""
    out = []
    for text in texts:
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def cleaned(texts, cfg: AdaptConfig) -> list[str]:
    return [clean_text(t) for t in texts] if cfg.data.clean else list(texts)


def hold_out(texts: list[str], wanted: int, seed: int) -> tuple[list[str], list[str]]:
    """(the rest, the held-out ones): a seeded sample of `wanted` texts, at most a tenth of them."""
    n = min(wanted, len(texts) // HELD_OUT_SHARE)
    held = set(np.random.default_rng(seed).permutation(len(texts))[:n].tolist())
    return [t for i, t in enumerate(texts) if i not in held], [t for i, t in enumerate(texts) if i in held]


# ---------------------------------------------------------------- tokens and masks


def piece_bounds(offsets: list, keep: int) -> list[tuple[int, int]]:
    """(start, end) token ranges of at most `keep` tokens covering a text; each ends before a word start (a token
    not joined to the one before it) when there is one in reach, so that no word is cut in two."""
    bounds, start, n = [], 0, len(offsets)
    while start < n:
        end = min(start + keep, n)
        if end < n:
            end = next((i for i in range(end, start, -1) if offsets[i][0] != offsets[i - 1][1]), end)
        bounds.append((start, end))
        start = end
    return bounds


def piece_function(tokenizer, max_length: int):
    """A batched `datasets.map` function: every text as pieces of at most `max_length` tokens with the model's
    special tokens around each, and the offsets and special-token mask that whole-word masking reads."""
    prefix, suffix = special_tokens_around(tokenizer)
    keep = max_length - len(prefix) - len(suffix)
    edge = ([[0, 0]] * len(prefix), [[0, 0]] * len(suffix))

    def pieces(batch):
        encoded = tokenizer(batch["text"], add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        out = {"input_ids": [], "attention_mask": [], "special_tokens_mask": [], "offset_mapping": []}
        for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"]):
            for start, end in piece_bounds(offsets, keep):
                out["input_ids"].append(prefix + ids[start:end] + suffix)
                out["attention_mask"].append([1] * (len(prefix) + end - start + len(suffix)))
                out["special_tokens_mask"].append([1] * len(prefix) + [0] * (end - start) + [1] * len(suffix))
                out["offset_mapping"].append(edge[0] + [list(o) for o in offsets[start:end]] + edge[1])
        return out

    return pieces


def pieces(texts: list[str], tokenizer, max_length: int):
    """`texts` cut into token pieces (a `datasets.Dataset`)."""
    import datasets

    return datasets.Dataset.from_dict({"text": texts}).map(piece_function(tokenizer, max_length), batched=True,
                                                           batch_size=1000, remove_columns=["text"])


class WholeWordMasking(DataCollatorForLanguageModeling):
    """Whole-word masking on batches padded to their longest piece. `tokenizer.pad` pads token lists but not the
    (start, end) pairs of `offset_mapping` that word boundaries come from, so those are padded here first; examples
    that are masked already (the held-out ones, masked once) are only padded.

    With a `seed`, a batch's masks are drawn from a generator seeded by the seed and the batch's own tokens, not from
    the global RNG: the Trainer restores the global RNG on a resume only after it has fetched (and masked) the first
    batch, so masks drawn from it made a resumed run differ from an uninterrupted one."""

    def __init__(self, tokenizer, mlm_probability: float, seed: int | None = None):
        super().__init__(tokenizer, whole_word_mask=True, mlm_probability=mlm_probability, mask_replace_prob=1.0,
                         random_replace_prob=0.0, pad_to_multiple_of=8, seed=seed)

    def torch_call(self, examples):
        if "labels" in examples[0]:
            return DataCollatorForTokenClassification(self.tokenizer, pad_to_multiple_of=8)(examples)
        width = -(-max(len(e["input_ids"]) for e in examples) // 8) * 8
        left = self.tokenizer.padding_side == "left"
        if self.seed is not None:
            digest = hashlib.blake2b(repr((self.seed, [list(e["input_ids"]) for e in examples])).encode(),
                                     digest_size=8).digest()
            self.generator = torch.Generator().manual_seed(int.from_bytes(digest, "little"))
            self._generator_pid = os.getpid()
        return super().torch_call([{**e, "offset_mapping": padded(e["offset_mapping"], width, left)}
                                   for e in examples])


def padded(offsets: list, width: int, left: bool) -> list:
    pad = [[0, 0]] * (width - len(offsets))
    return pad + list(offsets) if left else list(offsets) + pad


def masked_once(dataset, tokenizer, cfg: AdaptConfig):
    """`dataset` masked once by a seeded collator (input_ids, attention_mask, labels; unpadded): every evaluation
    scores the same masks, so its losses compare across checkpoints and runs."""
    import datasets

    collator, rows = WholeWordMasking(tokenizer, cfg.mlm_probability, seed=cfg.seed), {}
    for start in range(0, len(dataset), 256):
        batch = collator([dataset[i] for i in range(start, min(start + 256, len(dataset)))])
        for i, n in enumerate(batch["attention_mask"].sum(1).tolist()):
            for key in ("input_ids", "attention_mask", "labels"):
                rows.setdefault(key, []).append(batch[key][i, :n].tolist())
    return datasets.Dataset.from_dict(rows)


# ---------------------------------------------------------------- the model


def mlm_tokenizer(cfg: AdaptConfig):
    """The model's fast tokenizer, checked for what whole-word masking needs and for `max_length`."""
    tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
    if tokenizer.mask_token is None:
        raise SentituneError(f"--model {cfg.model}: its tokenizer has no mask token; masked-language-model adaptation "
                             "needs an encoder with one (BERT's [MASK], RoBERTa's <mask>).")
    if not tokenizer.is_fast:
        raise SentituneError(f"--model {cfg.model}: whole-word masking reads word offsets, which only fast tokenizers "
                             "give; save the model's tokenizer.json beside it.")
    return tokenizer


def mlm_model(cfg: AdaptConfig, runtime: Runtime) -> tuple[object, list[str]]:
    """The model with a masked-language-model head, seeded first, on the runtime's attention kernel; and the names
    of the weights its checkpoint lacked (initialised afresh: a sentence encoder has no MLM head)."""
    from transformers import AutoModelForMaskedLM

    set_seed(cfg.seed)
    model, info = load_pretrained(cfg.model, AutoModelForMaskedLM, cfg.trust_remote_code, output_loading_info=True)
    fresh = sorted(info["missing_keys"])
    if fresh:
        log.warning("%s has no trained MLM head (%d weights missing: %s); initialising a fresh one, which adapting "
                    "trains along with the encoder.", model_id(cfg.model), len(fresh), ", ".join(fresh[:3])
                    + (", ..." if len(fresh) > 3 else ""))
    return with_attention(model, runtime.attention), fresh


def unplaced_weights(cfg: AdaptConfig, model) -> dict:
    """The original's encoder weights that the MLM model has no place for (BERT's pooler), named as in the MLM
    model's own checkpoint; saved beside its weights, they reach a classifier built on the result."""
    from transformers import AutoModel

    if model.base_model is model:
        return {}
    encoder, info = load_pretrained(cfg.model, AutoModel, cfg.trust_remote_code, output_loading_info=True)
    placed, missing = set(model.base_model.state_dict()), set(info["missing_keys"])
    return {f"{model.base_model_prefix}.{name}": value.detach().clone()
            for name, value in encoder.state_dict().items() if name not in placed | missing}


def save_adapted(model, tokenizer, extra: dict, folder: Path) -> None:
    """The MLM model with the original's unplaced weights, and the tokenizer, saved into `folder`."""
    model = model.cpu()
    model.save_pretrained(str(folder), state_dict={**model.state_dict(), **extra})
    tokenizer.save_pretrained(str(folder))


# ---------------------------------------------------------------- training


class MlmProgress(RichProgress):
    """The progress bar, reporting the held-out MLM loss and perplexity at each evaluation."""

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.progress and metrics and "eval_loss" in metrics:
            loss = metrics["eval_loss"]
            self.progress.console.print(f"step {state.global_step}: held-out MLM loss {loss:.4f}, perplexity "
                                        f"{perplexity(loss):.2f}", markup=False)


class TokenCount(TrainerCallback):
    """Where the Trainer's count of tokens read (padding excluded) stood when this process began training."""

    start = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = state.num_input_tokens_seen


def perplexity(loss: float | None) -> float | None:
    return math.exp(min(loss, 700.0)) if loss is not None else None


def adapt_arguments(cfg: AdaptConfig, checkpoints: Path, runtime: Runtime, train_size: int,
                    scored: bool) -> TrainingArguments:
    """Trainer settings: the shared ones, held-out pieces scored at each checkpoint, losses only at evaluation."""
    every = checkpoint_every(cfg, train_size, cfg.save_steps)
    return TrainingArguments(
        **shared_arguments(cfg, checkpoints, runtime, every, train_size), per_device_eval_batch_size=cfg.batch_size,
        eval_strategy="steps" if scored else "no", eval_steps=every,
        # the masks need the offsets and special-token mask; the logits of a whole vocabulary per token are not kept
        remove_unused_columns=False, prediction_loss_only=True, include_num_input_tokens_seen="non_padding",
        train_sampling_strategy="group_by_length")


@dataclass
class Pieces:
    """The tokenized texts: the pieces to train on and the held-out ones, masked once (None when none)."""

    train: object
    held_out: object | None


def tokenized(texts: Texts, tokenizer, cfg: AdaptConfig) -> Pieces:
    held_out = pieces(texts.held_out, tokenizer, cfg.max_length) if texts.held_out else None
    return Pieces(pieces(texts.train, tokenizer, cfg.max_length),
                  masked_once(held_out, tokenizer, cfg) if held_out is not None else None)


class MaskedPositionsTrainer(SentimentTrainer):
    """The MLM loss from the logits of the masked positions only. Projecting every position onto the vocabulary
    (30,522 x 384 for the default) took 38% of a training step on an AMX Xeon; scoring only the ~15% of tokens that
    count made adapting 1.49x faster (docs/benchmarks.md, session 8). The loss is the model's own: the mean
    cross-entropy over masked tokens. The projection's input is narrowed by a hook on the model's output embeddings;
    a head that does not call them gets every position scored and the masked ones picked afterwards (the same loss,
    at the full cost)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        chosen = labels != -100
        decoder = self.accelerator.unwrap_model(model).get_output_embeddings()
        hook = decoder.register_forward_pre_hook(lambda _, args: (args[0][chosen],)) if decoder is not None else None
        try:
            outputs = model(**{key: value for key, value in inputs.items() if key != "labels"})
        finally:
            if hook is not None:
                hook.remove()
        logits = outputs.logits if outputs.logits.dim() == 2 else outputs.logits[chosen]
        loss = torch.nn.functional.cross_entropy(logits.float(), labels[chosen])
        return (loss, outputs) if return_outputs else loss


def adapt_trainer(cfg: AdaptConfig, model, tokenizer, runtime: Runtime, data: Pieces, work: RunFolder, callbacks):
    """The Trainer: length-grouped batches of pieces, masked as they are drawn, checkpoints in the work folder."""
    args = adapt_arguments(cfg, work.checkpoints_dir, runtime, len(data.train), data.held_out is not None)
    trainer = MaskedPositionsTrainer(
        model=model, args=args, train_dataset=data.train, eval_dataset=data.held_out, processing_class=tokenizer,
        data_collator=WholeWordMasking(tokenizer, cfg.mlm_probability, seed=cfg.seed),  # masks a resume redraws alike
        callbacks=[JsonlLogger(work.log_path, work.tb_dir, cfg.batch_size), MlmProgress(cfg.batch_size), *callbacks])
    trainer.remove_callback(PrinterCallback)  # the JSONL log and the progress bar say it already
    return trainer


def adapt_rate(probe: AdaptConfig, tokenizer, runtime: Runtime, data: Pieces) -> float:
    """Pieces per second of adaptation at `probe`'s batch size (a config of a few max_steps): a fresh MLM model
    trained on the first pieces in a scratch folder, timed in tokens/s over the steps after the first."""
    pieces = data.train.select(range(min(len(data.train), probe.max_steps * probe.batch_size
                                         * probe.gradient_accumulation)))
    clock = StepClock(probe.gradient_accumulation)
    with tempfile.TemporaryDirectory(prefix="sentitune-rate-") as out:
        trainer = adapt_trainer(probe, mlm_model(probe, runtime)[0], tokenizer, runtime, Pieces(pieces, None),
                                RunFolder(out), [clock])
        trainer.data_collator = clock.counting(trainer.data_collator)
        trainer.train()
    return clock.tokens_per_s() / tokens_per_example(data.train)


def fit(cfg: AdaptConfig, model, tokenizer, runtime: Runtime, data: Pieces, work: RunFolder, resume: bool,
        callbacks) -> tuple[object, dict]:
    """Train (from the last complete checkpoint on resume); the model, and the facts of its training."""
    count = TokenCount()
    trainer = adapt_trainer(cfg, model, tokenizer, runtime, data, work, [count, *callbacks])
    checkpoint = last_complete_checkpoint(work.checkpoints_dir) if resume else None
    started = time.perf_counter()
    train_preemptibly(trainer, checkpoint, work.path)
    seconds, read = time.perf_counter() - started, trainer.state.num_input_tokens_seen - count.start
    history = trainer.state.log_history  # the Trainer scores the held-out texts at the last step too
    scored = next((h for h in reversed(history) if "eval_loss" in h), {})
    losses = [h["loss"] for h in history if "loss" in h]
    return trainer.model, {
        "steps": trainer.state.global_step, "epochs": trainer.state.epoch, "pieces": len(data.train),
        "held_out_pieces": len(data.held_out) if data.held_out is not None else 0, "wall_time_s": seconds,
        "tokens_seen": int(trainer.state.num_input_tokens_seen), "tokens_per_s": read / seconds if read else None,
        "train_loss": losses[-1] if losses else None, "eval_loss": scored.get("eval_loss"),
        "eval_perplexity": perplexity(scored.get("eval_loss")),
        "resumed_from": Path(checkpoint).name if checkpoint else None, "precision": runtime.precision,
        "hardware": runtime.describe()}


@preemptible(lambda cfg, *args, **kwargs: f"adapt --name {cfg.name}")
@disk_space_checked(lambda cfg, *args, **kwargs: (f"adapt --name {cfg.name}", Path(cfg.output_dir)),
                    RESUME_AFTER_FREEING)
def adapt(cfg: AdaptConfig, resume: bool = False, overwrite: bool = False, callbacks=()) -> Path:
    """Adapt `cfg.model` to the texts of `cfg.data` and return the finished model folder.

    Bad input (config, data, model) stops before anything is created. `resume` goes on from the last complete
    checkpoint of an interrupted run of the same name; `callbacks`: extra `TrainerCallback`s (tests interrupt here)."""
    cfg = validate_adapt(cfg)
    final, work = check_folders(cfg, resume, overwrite)
    quiet_transformers()
    texts = adapt_texts(cfg)
    tokenizer = mlm_tokenizer(cfg)
    cfg = dataclasses.replace(cfg, max_length=decided_max_length(cfg.max_length, texts.train, tokenizer)["value"])
    runtime = Runtime.resolve(cfg.precision, cfg.attention)
    model, fresh = mlm_model(cfg, runtime)
    extra = unplaced_weights(cfg, model)
    data = tokenized(texts, tokenizer, cfg)
    sweep = None
    if cfg.auto_batch_size:  # measured on the adaptation's own steps, before anything is written
        cfg, sweep = swept(cfg, lambda probe: adapt_rate(probe, tokenizer, runtime, data), runtime.device)
        Console().print(sweep.sentence(), markup=False)
    with exclusive(final):
        check_folders(cfg, resume, overwrite)  # again, under the lock: another process may have started meanwhile
        if resume and (work.path / FACTS).is_file():  # killed after everything was written
            return work.finish(final).path
        work.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(work.path / CONFIG, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if sweep is not None:
            work.write_batch_sweep({"train": sweep.to_dict()})
        model, stats = fit(cfg, model, tokenizer, runtime, data, work, resume, callbacks)
        save_adapted(model, tokenizer, extra, work.path)
        write_json(work.path / FACTS, {"model": model_id(cfg.model), "max_length": cfg.max_length,
                                       "mlm_probability": cfg.mlm_probability, "whole_word_mask": True,
                                       "fresh_head": fresh, "kept_from_original": sorted(extra), **stats,
                                       "data": texts.report})
        return work.finish(final).path


def read_adapt_config(folder: str | Path) -> AdaptConfig:
    """The config an adapted model folder was made with (its adapt.yaml)."""
    values = read_yaml(Path(folder) / CONFIG, "adapt")
    return load_adapt_config(values, str(Path(folder) / CONFIG))
