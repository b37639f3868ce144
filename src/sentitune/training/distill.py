"""Distillation stage: a smaller student trained on a finished run's soft labels, into a normal run folder.

The student is K of the teacher's encoder layers (evenly spaced, embeddings and head copied) or any smaller model.
It trains through the one assembly (`train.train`) with a `Distillation` recipe: the training set is the labelled
train split plus optional unlabelled transfer texts, each row carrying the teacher's logits as a column, and the
loss is `alpha*T^2*KL(teacher_T || student_T) + (1-alpha)*CE` (Hinton et al. 2015), the CE term on labelled rows
only. The teacher is a `Teacher`: a name and a function from texts to an (n, K) array of logits, so an ensemble
(a model and TF-IDF, say) can teach as well as a run; its logits are computed once, in chunks cached in the work
folder, so a resume never recomputes them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import SentituneError
from ..core.io import atomic_file
from ..core.machine import Runtime
from ..data import DataConfig, clean_text, read_table
from ..data.tokenize import tokenize_splits, tokenizer_digest
from ..run.config import DistillConfig, TrainConfig, load_config
from ..run.folder import RunFolder
from .train import train
from .trainer import MODEL_COLUMNS, Prepared, Recipe, SentimentTrainer, rank

log = logging.getLogger("sentitune")
TEACHER_COLUMN = "teacher_logits"
CHUNK = 2048  # texts per cached piece of the teacher pass: a kill loses at most this much of it
LAYER = re.compile(r"\.layers?\.(\d+)\.")  # encoder layer i in a parameter name (BERT, RoBERTa, DeBERTa, ModernBERT)


# ---------------------------------------------------------------- the teacher


@dataclass(frozen=True)
class Teacher:
    """Where the soft labels come from: `logits(texts)` returns an (n, K) array whose softmax is the teacher's
    probabilities (log-probabilities do), for texts as the student reads them (cleaned as the data config says).
    `name` keys the cache of its logits; `facts` go to metrics.json."""

    name: str
    logits: Callable[[list[str]], np.ndarray]
    facts: dict = field(default_factory=dict)


def run_teacher(run: RunFolder, runtime: Runtime | None = None, batch_size: int | None = None) -> Teacher:
    """A finished run's model as the teacher: each text re-tokenised with the teacher's own tokenizer, length and
    truncation; the model is loaded on the first call only (a resume with every logit cached never loads it)."""
    loaded = {}

    def logits(texts: list[str]) -> np.ndarray:
        from ..inference.predict import SentimentModel

        if "model" not in loaded:
            loaded["model"] = SentimentModel.from_pretrained(run.model_dir, backend="torch", runtime=runtime)
        return loaded["model"].score(texts, batch_size, clean=False).logits  # the texts are cleaned already

    return Teacher(f"run:{run.path.resolve()}", logits, {"run": str(run.path), "model": str(run.model_dir)})


def from_probabilities(name: str, probabilities: Callable[[list[str]], np.ndarray], facts: dict | None = None
                       ) -> Teacher:
    """A teacher that gives (n, K) probabilities (an ensemble, a TF-IDF model): their logs are its logits."""
    return Teacher(name, lambda texts: np.log(np.clip(probabilities(texts), 1e-12, 1.0)), facts or {})


def tfidf_ensemble(teacher: Teacher, train, labels) -> Teacher:
    """The mean of `teacher`'s probabilities and a TF-IDF + logistic regression's, fitted on the labelled `train`
    split (the `tfidf` baseline's model) at the first call: a resume with every logit cached fits nothing. On IMDB
    the mean of cpu-full's and its probabilities scored 93.15% against 92.06% for the model alone (docs/results.md)."""
    import pandas as pd

    from ..core.metrics import softmax
    from ..evaluation.baselines import as_frame, fit_tfidf

    fitted, facts = {}, {**teacher.facts, "ensemble": "mean of the run's and TF-IDF + LR's probabilities"}

    def probabilities(texts: list[str]) -> np.ndarray:
        if "tfidf" not in fitted:
            fitted["tfidf"] = fit_tfidf({"train": as_frame(train)}, labels)
            facts["tfidf"] = {k: fitted["tfidf"].extra.get(k) for k in ("train_size", "n_features", "C")}
        words = fitted["tfidf"].score(pd.DataFrame({"text": texts}))["tfidf-lr"].probs
        return (softmax(teacher.logits(texts)) + words) / 2

    return from_probabilities(f"{teacher.name}+tfidf", probabilities, facts)


def cache_key(teacher: Teacher, texts: list[str]) -> str:
    digest = hashlib.sha256(f"{teacher.name}|{CHUNK}|{len(texts)}".encode())
    for text in texts:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()


def checked_logits(values, n: int, n_classes: int, teacher: Teacher) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.shape != (n, n_classes) or not np.isfinite(values).all():
        raise SentituneError(f"teacher {teacher.name}: returned an array of shape {values.shape} (finite: "
                             f"{bool(np.isfinite(values).all())}); it must give ({n}, {n_classes}) finite logits.")
    return values


def save_array(path: Path, values: np.ndarray) -> None:
    with atomic_file(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, values)


def cached_logits(teacher: Teacher, texts: list[str], folder: Path, n_classes: int) -> np.ndarray:
    """The teacher's (n, K) logits for `texts`, each chunk saved in `folder` as it finishes and reused by a resume;
    a folder keyed to another teacher or other texts is started over."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    key, key_file = cache_key(teacher, texts), folder / "key.txt"
    if folder.exists() and (not key_file.is_file() or key_file.read_text() != key):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)
    starts = range(0, len(texts), CHUNK)
    done = sum((folder / f"part-{i:05d}.npy").is_file() for i in range(len(starts)))
    log.info("teacher pass over %d texts: %d of %d chunks cached%s", len(texts), done, len(starts),
             ", reused" if done else "")
    parts = []
    with Progress(TextColumn("teacher"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as progress:
        task = progress.add_task("teacher", total=len(texts))
        for i, start in enumerate(starts):
            path, chunk = folder / f"part-{i:05d}.npy", texts[start:start + CHUNK]
            if not path.is_file():
                save_array(path, checked_logits(teacher.logits(chunk), len(chunk), n_classes, teacher))
            parts.append(checked_logits(np.load(path), len(chunk), n_classes, teacher))
            progress.advance(task, len(chunk))
    return np.concatenate(parts) if parts else np.zeros((0, n_classes), np.float32)


# ---------------------------------------------------------------- the student


def chosen_layers(depth: int, k: int) -> list[int]:
    """K of `depth` layers, evenly spaced from the first to the last (the last alone for K = 1: the head was
    trained on its output)."""
    if k == 1:
        return [depth - 1]
    return [math.floor(i * (depth - 1) / (k - 1) + 0.5) for i in range(k)]


def teacher_depth(run: RunFolder) -> int:
    from ..models.loading import load_config as model_config

    depth = getattr(model_config(str(run.model_dir), flag="teacher"), "num_hidden_layers", None)
    if not isinstance(depth, int):
        raise SentituneError(f"--student-layers: the teacher {run.model_dir} does not say how many layers it has; "
                             "pass --student MODEL instead.")
    return depth


def layer_student(run: RunFolder, layers: list[int], cfg: TrainConfig, attention: str = "auto"):
    """A classifier of the teacher's architecture with `len(layers)` encoder layers: student layer i is a copy of
    teacher layer `layers[i]`; embeddings, pooler and classification head are copied as they are (dropout as
    `cfg` overrides it)."""
    from ..models.attention import attn_implementation
    from ..models.loading import load_classifier

    teacher = load_classifier(str(run.model_dir))
    config = teacher.config.__class__.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = len(layers)
    for attr, value in (("hidden_dropout_prob", cfg.dropout), ("attention_probs_dropout_prob", cfg.attention_dropout)):
        if value is not None:
            setattr(config, attr, value)
    student = type(teacher)(config)
    source = teacher.state_dict()
    state = {}
    for name in student.state_dict():
        match = LAYER.search(name)
        origin = (name[:match.start(1)] + str(layers[int(match.group(1))]) + name[match.end(1):]) if match else name
        if origin not in source:
            raise SentituneError(f"--student-layers: cannot map the layers of {type(teacher).__name__} "
                                 f"({name} has no counterpart); pass --student MODEL instead.")
        state[name] = source[origin].clone()
    student.load_state_dict(state, strict=True)
    if student._can_set_attn_implementation():
        student.set_attn_implementation(attn_implementation(attention))
    return student


def parameter_count(model_dir: Path) -> int | None:
    """Parameters of a saved model, read from its safetensors headers (nothing loaded)."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    total = 0
    for path in files:
        with safe_open(str(path), "pt") as weights:
            total += sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())
    return total or None


# ---------------------------------------------------------------- the loss


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float,
                      alpha: float) -> torch.Tensor:
    """alpha*T^2*KL(teacher_T || student_T) + (1-alpha)*CE(student, label), averaged over the batch; rows without a
    label (-1: transfer texts) have the KL term only. T^2 keeps the soft gradients' scale as T changes."""
    student, teacher = student.float(), teacher.float().to(student.device)
    kl = F.kl_div(F.log_softmax(student / temperature, -1), F.log_softmax(teacher / temperature, -1),
                  reduction="none", log_target=True).sum(-1)
    labelled = labels >= 0
    ce = F.cross_entropy(student, labels.clamp(min=0), reduction="none") * labelled
    return (alpha * temperature ** 2 * kl + (1 - alpha) * ce).mean()


class DistillationTrainer(SentimentTrainer):
    """SentimentTrainer whose training loss is `distillation_loss` on the teacher's logits, carried by the training
    set as a column; validation batches have none and score plain cross-entropy."""

    loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it over gradient accumulation

    def __init__(self, *args, temperature: float, alpha: float, **kwargs):
        self.temperature, self.alpha = temperature, alpha
        super().__init__(*args, **kwargs)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if TEACHER_COLUMN not in self._signature_columns:  # else the Trainer drops the column as unused
            self._signature_columns.append(TEACHER_COLUMN)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher, labels = inputs.get(TEACHER_COLUMN), inputs.get("labels")
        outputs = model(**{k: v for k, v in inputs.items() if k not in (TEACHER_COLUMN, "labels")})
        logits = outputs.logits.float()
        loss = (F.cross_entropy(logits, labels) if teacher is None
                else distillation_loss(logits, teacher, labels, self.temperature, self.alpha))
        return (loss, outputs) if return_outputs else loss


# ---------------------------------------------------------------- transfer texts


def transfer_frame(dcfg: DistillConfig):
    """--transfer-data as a frame with one `text` column (empty rows dropped); one-line errors for a missing file,
    a missing text column or values that are not text."""
    path, column = Path(dcfg.transfer_data), dcfg.transfer_text_column
    if path.is_dir():
        raise SentituneError(f"--transfer-data {path}: a folder; pass one .csv/.tsv/.jsonl/.parquet file of texts "
                             "(e.g. unsupervised.parquet).")
    frame = read_table(path, DataConfig(data=str(path), text_column=column))
    if column not in frame.columns:
        raise SentituneError(f"--transfer-data {path}: no text column '{column}' (columns: {list(frame.columns)}); "
                             "pass --transfer-text-column.")
    texts = frame[column]
    wrong = texts.notna() & ~texts.map(lambda t: isinstance(t, str))
    if wrong.any():
        raise SentituneError(f"--transfer-data {path}: column '{column}' holds {type(texts[wrong].iloc[0]).__name__} "
                             f"values, not text (row {int(np.flatnonzero(wrong)[0])}); pass --transfer-text-column.")
    texts = texts[texts.notna() & (texts.fillna("").str.strip() != "")]
    if texts.empty:
        raise SentituneError(f"--transfer-data {path}: no non-empty texts in column '{column}'.")
    return texts.reset_index(drop=True).to_frame("text")


def held_out_dropped(texts: list[str], prepared: Prepared, where: str) -> tuple[list[str], dict]:
    """The transfer texts minus those of the test and validation splits, and how many of each went. Refuses a
    transfer set that is mostly test texts: that is the test split, and the student must never learn it."""
    test, validation = set(prepared.splits["test"]["text"]), set(prepared.splits["validation"]["text"])
    in_test = sum(t in test for t in texts)
    if in_test * 2 > len(texts):
        raise SentituneError(f"--transfer-data {where}: {in_test} of its {len(texts)} texts are test texts; never "
                             "distil on the test split (pass unlabelled texts, e.g. unsupervised.parquet).")
    kept = [t for t in texts if t not in test and t not in validation]
    in_validation = len(texts) - in_test - len(kept)
    if in_test or in_validation:
        log.warning("--transfer-data %s: %d test and %d validation texts dropped", where, in_test, in_validation)
    return kept, {"dropped_test": in_test, "dropped_validation": in_validation}


# ---------------------------------------------------------------- the recipe


class Distillation(Recipe):
    """The training assembly's recipe for distillation: the student, the soft-labelled training set, the loss."""

    def __init__(self, run: RunFolder, dcfg: DistillConfig, transfer=None, teacher: Teacher | None = None):
        self.run, self.dcfg, self.transfer, self.teacher = run, dcfg, transfer, teacher
        self.info: dict = {}

    def model(self, cfg: TrainConfig, prepared: Prepared):
        taught = self.run.labels().names
        if tuple(taught) != tuple(prepared.labels.names):
            raise SentituneError(f"teacher {self.run.path}: its classes {list(taught)} are not the data's "
                                 f"{list(prepared.labels.names)}; distil on the teacher's own data.")
        self.teacher = self.teacher or run_teacher(self.run, prepared.runtime, cfg.eval_batch_size)
        if self.dcfg.teacher_ensemble == "tfidf" and not self.teacher.name.endswith("+tfidf"):
            self.teacher = tfidf_ensemble(self.teacher, prepared.splits["train"], prepared.labels)
        self.texts = self.transfer_texts(cfg, prepared)
        self.info |= {"same_tokenizer": self.same_tokenizer(cfg, prepared), "labelled": len(prepared.splits["train"])}
        if self.dcfg.student_layers:
            layers = chosen_layers(teacher_depth(self.run), self.dcfg.student_layers)
            model = layer_student(self.run, layers, cfg, prepared.runtime.attention)
            self.info["student"] = {"layers": len(layers), "teacher_layers": layers, "model": None}
        else:
            model = super().model(cfg, prepared)
            self.info["student"] = {"layers": getattr(model.config, "num_hidden_layers", None), "teacher_layers": None,
                                    "model": cfg.model}
        self.info["student"]["parameters"] = sum(p.numel() for p in model.parameters())
        return model

    def same_tokenizer(self, cfg: TrainConfig, prepared: Prepared) -> bool:
        from ..models.loading import load_tokenizer

        same = tokenizer_digest(prepared.tokenizer) == tokenizer_digest(load_tokenizer(str(self.run.model_dir)))
        if not same:
            log.warning("the student's tokenizer (%s) differs from the teacher's: the teacher pass re-tokenises every "
                        "text with the teacher's own tokenizer", cfg.model)
        return same

    def transfer_texts(self, cfg: TrainConfig, prepared: Prepared) -> list[str]:
        """The transfer texts the student trains on: cleaned like the data, held-out texts dropped, sampled."""
        if self.transfer is None:
            return []
        texts = [clean_text(t) for t in self.transfer["text"]] if cfg.data.clean else list(self.transfer["text"])
        kept, dropped = held_out_dropped(texts, prepared, self.dcfg.transfer_data)
        if not kept:
            raise SentituneError(f"--transfer-data {self.dcfg.transfer_data}: every text is a test or validation "
                                 "text; pass other texts.")
        n = self.dcfg.transfer_examples
        if n is not None and n < len(kept):
            picked = np.sort(np.random.default_rng(cfg.seed).choice(len(kept), n, replace=False))
            kept = [kept[i] for i in picked]
        self.info["transfer"] = {"data": self.dcfg.transfer_data, "text_column": self.dcfg.transfer_text_column,
                                 "rows": len(self.transfer), **dropped, "used": len(kept)}
        return kept

    def train_set(self, cfg: TrainConfig, prepared: Prepared, out_dir: Path):
        """The labelled train split and the transfer texts (label -1), each row with the teacher's logits."""
        import datasets

        train = super().train_set(cfg, prepared, out_dir)
        parts = [train]
        if self.texts:
            unlabelled = datasets.Dataset.from_dict({"text": self.texts, "label": [-1] * len(self.texts)})
            tokenized = tokenize_splits(datasets.DatasetDict({"transfer": unlabelled}), prepared.tokenizer,
                                        cfg.max_length, cfg.truncation, use_cache=prepared.use_cache)["transfer"]
            parts.append(tokenized.select_columns(MODEL_COLUMNS).cast(train.features))
        texts = list(prepared.splits["train"]["text"]) + self.texts
        logits = cached_logits(self.teacher, texts, RunFolder(out_dir).teacher_dir, prepared.labels.n)
        return datasets.concatenate_datasets(parts).add_column(
            TEACHER_COLUMN, logits.tolist(), feature=datasets.List(datasets.Value("float32")))

    def trainer(self, **kwargs):
        return DistillationTrainer(temperature=self.dcfg.temperature, alpha=self.dcfg.alpha, **kwargs)

    def facts(self) -> dict:
        """metrics.json's `distillation`: the teacher, the student, T and alpha, and the texts it learnt from."""
        recorded = self.run.metrics().get("test") or {}
        teacher = {"run": str(self.run.path), "name": self.teacher.name, **self.teacher.facts,
                   "test_accuracy": recorded.get("accuracy"), "test_f1_macro": recorded.get("f1_macro"),
                   "layers": teacher_depth(self.run), "parameters": parameter_count(self.run.model_dir),
                   "test_examples_per_s": (self.run.metrics().get("inference") or {}).get("examples_per_s")}
        return {"distillation": {
            "teacher": teacher, "student": self.info["student"], "temperature": self.dcfg.temperature,
            "alpha": self.dcfg.alpha, "same_tokenizer": self.info["same_tokenizer"],
            "soft_labels": {"labelled": self.info["labelled"], "transfer": len(self.texts)},
            "transfer": self.info.get("transfer"), "config": self.dcfg.to_dict()}}


# ---------------------------------------------------------------- the stage


def finished_teacher(path: str | Path) -> RunFolder:
    """The teacher's run folder if it is finished and holds its weights; one line otherwise."""
    run = RunFolder(Path(path))
    if run.is_partial or (not run.metrics_path.is_file() and run.work.path.is_dir()):
        raise SentituneError(f"teacher {run.path}: the run is not finished; finish it with `sentitune train "
                             "--resume` first.")
    if not run.path.is_dir():
        raise SentituneError(f"teacher {run.path}: no such run folder; pass a run made by `sentitune train`.")
    run.require()
    if not run.has_weights():
        raise SentituneError(f"teacher {run.path}: model/ holds no weights; pass a run folder with its model.")
    return run


def student_config(run: RunFolder, dcfg: DistillConfig, overrides: dict | None = None,
                   config: str | Path | None = None, preset: str | None = None) -> TrainConfig:
    """The student's TrainConfig: the teacher's (same data, splits, length and truncation, so its test examples
    are the teacher's), then the preset, the YAML file and the overrides; the model is the student's."""
    overrides = overrides or {}
    if overrides.get("model") is not None:
        raise SentituneError("distill: the student is --student MODEL or --student-layers K, not --model.")
    suffix = f"{dcfg.student_layers}layers" if dcfg.student_layers else "student"
    base = run.config().to_dict() | {"name": f"{run.name}-{suffix}", "output_dir": str(run.path.parent),
                                     "model": dcfg.student or str(run.model_dir)}
    if overrides.get("self_distill") not in (None, "none"):
        raise SentituneError("distill: --self-distill belongs to `sentitune train` (it chains this command after "
                             "training); a student teaches no further student.")
    # a teacher trained with --self-distill (or a preset that has it) must not make its student look chained
    cfg = replace(load_config(config, preset, overrides, base=base), self_distill="none")
    if cfg.class_weights:
        raise SentituneError("distill: --class-weights is not supported; the soft labels already carry the "
                             "teacher's view of every class.")
    return cfg


def distill(teacher_run: str | Path, dcfg: DistillConfig, overrides: dict | None = None,
            config: str | Path | None = None, preset: str | None = None, resume: bool = False,
            overwrite: bool = False, callbacks=(), teacher: Teacher | None = None, transfer=None) -> Path:
    """Distil the finished run `teacher_run` into a student (per `dcfg`) and return the student's run folder.

    `teacher`: where the soft labels come from (default: the run's own model); `transfer`: the unlabelled texts (a
    frame with a `text` column; default: read from `dcfg.transfer_data`); `resume`, `overwrite` and `callbacks` as
    for `train.train`. Every input is checked before anything is written."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 or rank() != 0:
        raise SentituneError("distill: runs in one process; start it without torchrun/accelerate.")
    run = finished_teacher(teacher_run)
    if dcfg.student_layers and dcfg.student_layers > (depth := teacher_depth(run)):
        raise SentituneError(f"--student-layers {dcfg.student_layers}: the teacher has {depth} layers; "
                             f"pass 1 to {depth}.")
    cfg = student_config(run, dcfg, overrides, config, preset)
    if transfer is None and dcfg.transfer_data:
        transfer = transfer_frame(dcfg)
    recipe = Distillation(run, dcfg, transfer, teacher)
    return train(cfg, resume=resume, overwrite=overwrite, callbacks=callbacks, recipe=recipe)


