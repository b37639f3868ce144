"""The typed configuration of a training run: one dataclass, built alike from CLI flags, a YAML file or Python.

Every knob is a field with a help string (as in Hugging Face's `run_classification.py`); the resolved
config is saved as `config.yaml` beside the run's results.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..core.errors import SentituneError
from ..core.io import read_yaml
from ..data import DataConfig
from ..models.loading import DEFAULT_MODEL_ID


@dataclass
class TrainingConfig:
    """What every kind of training shares (fine-tuning, distillation's student, domain adaptation): the model, the
    data, the optimiser and its schedule, precision, checkpoints. Each field is defined here once."""

    name: str = field(default="sentitune", metadata={"help": "Run name: results go to <output_dir>/<name>/."})
    output_dir: str = field(default="runs", metadata={"help": "Folder that holds run folders."})
    model: str = field(default=DEFAULT_MODEL_ID, metadata={
        "help": "Hub model id or local folder (default: the offline all-MiniLM-L6-v2)."})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "Allow model code from the Hub (off: only transformers' own architectures)."})
    attention: str = field(default="auto", metadata={
        "help": "Attention kernel: auto (bf16 matmul attention on CPU up to 256 tokens, ~1.3x faster training than "
                "SDPA's CPU kernel; SDPA elsewhere), sdpa or eager."})
    max_length: int | None = field(default=None, metadata={
        "help": "Tokens per text, special tokens included (default: the training texts' 99th percentile "
                "rounded up to 8, at most 256)."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate of AdamW."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training data (ignored when max_steps > 0)."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (-1: use epochs)."})
    batch_size: int = field(default=16, metadata={"help": "Training examples per device per step."})
    gradient_accumulation: int = field(default=1, metadata={
        "help": "Steps whose gradients add up before an optimizer step."})
    auto_batch_size: bool = field(default=False, metadata={
        "help": "Set by --batch-size auto: time a few optimizer steps at each micro-batch size (powers of two up to "
                "batch_size) on this machine and train with the fastest that fits; gradient accumulation keeps "
                "batch_size x gradient_accumulation examples per optimizer step, so the accuracy does not change."})
    batch_memory_limit_gb: float | None = field(default=None, metadata={
        "help": "Memory a batch-size candidate may use (default: 80% of this machine's memory, or of the GPU's)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.06, metadata={"help": "Share of steps with linear warm-up."})
    scheduler: str = field(default="linear", metadata={
        "help": "Learning-rate schedule: linear, cosine, constant_with_warmup, ..."})
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16 on CPUs with bf16 support and Ampere+ GPUs, fp16 on older GPUs, else fp32), "
                "bf16, fp16 or fp32."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept on disk (train also keeps its best)."})
    logging_steps: int = field(default=10, metadata={"help": "Log loss, learning rate and throughput every N steps."})
    seed: int = field(default=42, metadata={"help": "Seed for new weights (a head), masks and data order."})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Data source and preparation."})

    def to_dict(self) -> dict:
        return asdict(self)


def _default(cls, name: str, default):
    """`cls`'s field `name` with another default and the same help (a subclass that starts elsewhere)."""
    return field(default=default, metadata=cls.__dataclass_fields__[name].metadata)


@dataclass
class TrainConfig(TrainingConfig):
    """Everything that decides a fine-tuning run."""

    dropout: float | None = field(default=None, metadata={"help": "Hidden dropout override (None keeps the model's)."})
    attention_dropout: float | None = field(default=None, metadata={
        "help": "Attention dropout override (None keeps the model's; 0 is much faster on CPU)."})
    truncation: str = field(default="head+tail", metadata={
        "help": "Which tokens long reviews keep: head, tail or head+tail."})
    layer_lr_decay: float = field(default=1.0, metadata={
        "help": "Layer-wise learning-rate decay: each encoder layer learns at this factor times the rate of the layer "
                "above, the embeddings lowest (1.0: off; 0.8-0.95 is usual)."})
    auto_eval_batch_size: bool = field(default=False, metadata={
        "help": "Set by --eval-batch-size auto: predict with the eval batch size measured fastest here."})
    eval_batch_size: int = field(default=64, metadata={"help": "Examples per batch at evaluation and prediction."})
    group_by_length: bool = field(default=True, metadata={
        "help": "Batch reviews of similar length together (less padding)."})
    class_weights: bool = field(default=False, metadata={
        "help": "Weight the loss by inverse class frequency (for imbalanced data)."})
    eval_steps: int = field(default=0, metadata={
        "help": "Evaluate and checkpoint every N steps (0: about 4 times per epoch)."})
    selection_metric: str = field(default="auto", metadata={
        "help": "Validation metric that picks the best checkpoint, early-stops and scores tuning trials: auto (F1 of "
                "the positive class for two classes, macro F1 above), f1, f1_macro, recall_macro or accuracy."})
    checkpoint: str = field(default="best", metadata={
        "help": "The weights a run keeps: best (on the validation metric; early stopping may end the run), last "
                "(the end of the schedule, no early stopping; validation is still scored at every evaluation) or "
                "auto (last for a schedule of one epoch or less, best for more)."})
    early_stopping_patience: int = field(default=3, metadata={
        "help": "Stop after N evaluations without a better validation F1 (0: never)."})
    early_stopping_from: float = field(default=0.5, metadata={
        "help": "Share of the training steps before which early stopping never stops a run: while the learning rate "
                "is near its peak, validation scores dip and recover (0: from the first evaluation)."})
    self_distill: str = field(default="none", metadata={
        "help": "After training, teach a model of the same size started from this run's weights: none, model (this "
                "run's probabilities teach) or tfidf (the mean of this run's and a TF-IDF + LR's fitted on the train "
                "split). The student, run <name>-taught, trains one epoch at half the peak learning rate and keeps "
                "its last checkpoint; it is the model to deploy (`sentitune distill` has every knob)."})
    self_distill_texts: int = field(default=20000, metadata={
        "help": "Unlabelled texts of the source (its unsupervised split, when it has one) the teacher labels for "
                "the student, besides the train split (0: the train split only)."})

    @property
    def keeps_best(self) -> bool:
        """The checkpoint policy, decided here only: keep the best checkpoint on validation (early stopping allowed)
        unless the config asks for the last, or validation is folded into training, where picking on it would pick
        on data the model trained on. `auto` keeps the last of a one-epoch schedule: a validation sample of a few
        hundred texts tells its checkpoints apart by noise (a main job on IMDB kept step 158 of 632, 88.05% on the
        test sample, for 0.017 of validation F1), and the decayed end of one pass is the model to keep; with more
        epochs it keeps the best, as overfitting becomes the risk."""
        if self.data.validation_in_train or self.checkpoint == "last":
            return False
        return self.checkpoint == "best" or (self.epochs > 1 and self.max_steps <= 0)

    def save(self, path: Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


@dataclass
class DistillConfig:
    """What makes a run a distillation: the student, the teacher's soft labels and the extra texts they cover."""

    student_layers: int | None = field(default=None, metadata={
        "help": "Build the student from K of the teacher's encoder layers, evenly spaced from its first to its last "
                "(K = 1: the last), with the teacher's embeddings and classification head."})
    student: str | None = field(default=None, metadata={
        "help": "Or train this smaller model (Hub id or folder) as the student; its head is sized to the classes."})
    temperature: float = field(default=2.0, metadata={
        "help": "Softmax temperature T of the soft labels: above 1 shows the student how the teacher ranks the "
                "other classes."})
    alpha: float = field(default=0.5, metadata={
        "help": "Weight of the soft labels: loss = alpha*T^2*KL(teacher || student) + (1-alpha)*CE on the hard "
                "labels; unlabelled transfer texts have the KL term only."})
    transfer_data: str | None = field(default=None, metadata={
        "help": "Extra unlabelled texts for the teacher to label: one .csv/.tsv/.jsonl/.parquet file (labels in it "
                "are ignored; texts of the test and validation splits are dropped)."})
    transfer_text_column: str = field(default="text", metadata={"help": "Column of --transfer-data holding the text."})
    transfer_examples: int | None = field(default=None, metadata={
        "help": "Use a random sample of N transfer texts (None: all)."})
    teacher_ensemble: str | None = field(default=None, metadata={
        "help": "tfidf: the teacher is the mean of the run's probabilities and those of a TF-IDF + logistic "
                "regression fitted on the train split (an ensemble teaches, the student alone is deployed)."})

    def to_dict(self) -> dict:
        return asdict(self)


TEACHER_ENSEMBLES = ("tfidf",)
DISTILL_RANGES = {"student_layers": (1, 1 << 20, True, True), "temperature": (0, 1000, False, True),
                  "alpha": (0, 1, True, True), "transfer_examples": (1, 1 << 40, True, True)}


def load_distill_config(values: dict | None = None, where: str = "distill") -> DistillConfig:
    """A DistillConfig from field values (None: the default), typed and validated; one line naming the flag else."""
    values = _without_none(values or {})
    known = {f.name for f in dataclasses.fields(DistillConfig)}
    if set(values) - known:
        raise SentituneError(f"{where}: unknown field(s) {sorted(map(str, set(values) - known))}; "
                             "see `sentitune distill --help`.")
    cfg = DistillConfig(**_typed(DistillConfig, values, where))
    for name, bounds in DISTILL_RANGES.items():
        _check_range(name.replace("_", "-"), getattr(cfg, name), bounds, where)
    if (cfg.student_layers is None) == (cfg.student is None):
        raise SentituneError(f"{where}: pass either --student-layers K (K of the teacher's layers) "
                             "or --student MODEL (another model), not both or neither.")
    if cfg.teacher_ensemble not in (None, *TEACHER_ENSEMBLES):
        raise SentituneError(f"{where}: --teacher-ensemble {cfg.teacher_ensemble}: use one of "
                             f"{', '.join(TEACHER_ENSEMBLES)} (or leave it out: the run alone teaches).")
    if cfg.transfer_data and cfg.alpha == 0:
        raise SentituneError(f"{where}: --alpha 0 ignores the teacher's soft labels, so --transfer-data would add "
                             "nothing; raise --alpha or drop --transfer-data.")
    return cfg


CPU_FULL = {"max_length": 256, "epochs": 1.0, "batch_size": 16, "learning_rate": 1e-4, "attention_dropout": 0.0,
            "dropout": 0.0, "eval_batch_size": 16, "eval_steps": 300, "data": {"validation_per_class": 500}}
PRESETS: dict[str, dict] = {
    # The main job: its time budget (10 minutes by default) grows or shrinks the training set around these sizes and
    # gives a small data set more epochs; evaluation on a fixed balanced test sample. Dropout off and eval batch 16:
    # the fastest settings measured that keep accuracy (docs/benchmarks.md); checkpoint auto: the last of one epoch.
    "cpu-quick": {"max_length": 256, "epochs": 1.0, "batch_size": 16, "learning_rate": 1e-4, "attention_dropout": 0.0,
                  "dropout": 0.0, "eval_batch_size": 16, "checkpoint": "auto",
                  "data": {"train_per_class": 2500, "validation_per_class": 250, "test_per_class": 1000}},
    # The full IMDB train (minus validation) and the full 25k test set on CPU: 92.06% on the test set with dropout off
    # (92.10% with hidden dropout 0.1, 1.4x slower; docs/results.md).
    "cpu-full": CPU_FULL,
    # cpu-full, then the mean of its and TF-IDF + LR's probabilities over the train split and 20,000 unlabelled
    # reviews taught to a model of its size started from it: the best single model measured on IMDB (92.65% against
    # cpu-full's 92.10%; this preset end to end: 92.63% in 54 min on a 2-core AMX Xeon; docs/results.md, session 9).
    "cpu-best": CPU_FULL | {"self_distill": "tfidf", "self_distill_texts": 20000},
    # Short texts with three classes (TweetEval): length from the data, checkpoints picked on macro recall (the
    # task's official metric); 20,000 tweets train in ~11 min on a 2-core AVX2 CPU. Inverse-frequency class
    # weights lost 0.9 points of test macro recall here (docs/results.md).
    "tweets": {"epochs": 1.0, "batch_size": 32, "learning_rate": 5e-5, "dropout": 0.1, "attention_dropout": 0.1,
               "eval_batch_size": 64, "selection_metric": "recall_macro", "eval_steps": 125,
               "data": {"train_examples": 20000}},
    # Five ordered classes of short sentences (SST-5): 2.5 epochs over 8,544 sentences at lr 1e-4, checkpoints
    # picked on validation accuracy (51.3% on the test set, 11 min on a 2-core AVX2 CPU; four epochs gave the same
    # validation accuracy and 50.8% in 16 min; docs/results.md).
    "sentences-5": {"epochs": 2.5, "batch_size": 32, "learning_rate": 1e-4, "warmup_ratio": 0.1, "eval_batch_size": 64,
                    "selection_metric": "accuracy", "eval_steps": 100, "early_stopping_patience": 5},
    # A GPU with bf16: longer reviews, more epochs.
    "gpu-base": {"max_length": 512, "epochs": 3.0, "batch_size": 32, "learning_rate": 5e-5, "eval_batch_size": 256},
    # The seed document's recipe: fine-tune the nlptown star model (its 5-label head is replaced by neg/pos).
    "seed-nlptown": {"model": "nlptown/bert-base-multilingual-uncased-sentiment", "max_length": 512, "epochs": 2.0,
                     "batch_size": 16, "learning_rate": 2e-5, "data": {"train_per_class": 5000}},
}


def _merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        below = merged.get(key)
        merged[key] = _merge(below if isinstance(below, dict) else {}, value) if isinstance(value, dict) else value
    return merged


def _auto_sizes(values: dict) -> dict:
    """`batch_size: auto` (and eval_batch_size) as the auto flags: the size set before (preset, file) stays the
    effective batch that accumulation keeps."""
    values = dict(values)
    for name in ("batch_size", "eval_batch_size"):
        value = values.get(name)
        if isinstance(value, str) and value.strip().lower() == "auto":
            del values[name]
            values[f"auto_{name}"] = True
        elif isinstance(value, str) and not value.strip().isdigit():
            raise SentituneError(f"--{name.replace('_', '-')} {value}: use a positive whole number of examples, "
                                 "or auto (the fastest size that fits, measured on this machine).")
    return values


def _without_none(values: dict) -> dict:
    """CLI flags left unset arrive as None: they must not override the preset or the file."""
    return {k: _without_none(v) if isinstance(v, dict) else v for k, v in values.items() if v is not None}


def _coerce(value, hint: str, name: str, where: str):
    """`value` as the field's type (YAML reads `1e-4` as a string); one-line error when it is not one."""
    optional = "None" in hint
    if value is None:
        if optional:
            return None
        raise SentituneError(f"{where}: {name} must not be empty.")
    base = hint.replace(" | None", "")
    try:
        if base == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in {"true", "yes", "1", "false", "no", "0"}:
                return str(value).lower() in {"true", "yes", "1"}
            raise ValueError
        if base == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value  # however large: the range check names it
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if base == "float":
            if isinstance(value, (bool, list, dict)):
                raise ValueError
            return float(value)
        if isinstance(value, (list, dict)):
            raise ValueError
        return str(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: .inf or 1e400 as an int, 10**400 as a float
        raise SentituneError(f"{where}: {name} = {value!r} is not a{'n' if base == 'int' else ''} {base}.") from None


def _typed(cls, values: dict, where: str, prefix: str = "") -> dict:
    hints = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    return {k: _coerce(v, hints[k], prefix + k, where) for k, v in values.items()}


RANGES = {  # field: (low, high, low inclusive, high inclusive)
    "learning_rate": (0, 1, False, True), "layer_lr_decay": (0, 1, False, True), "epochs": (0, 1000, False, True),
    "batch_size": (1, 1 << 16, True, True), "eval_batch_size": (1, 1 << 16, True, True),
    "gradient_accumulation": (1, 1 << 16, True, True), "weight_decay": (0, 1, True, True),
    "warmup_ratio": (0, 1, True, False), "dropout": (0, 1, True, False), "attention_dropout": (0, 1, True, False),
    "eval_steps": (0, 1 << 40, True, True),
    "batch_memory_limit_gb": (0, 1 << 20, False, True),
    "early_stopping_patience": (0, 1 << 20, True, True),
    "early_stopping_from": (0, 1, True, False), "self_distill_texts": (0, 1 << 40, True, True),
    "save_total_limit": (1, 1 << 20, True, True), "logging_steps": (1, 1 << 40, True, True),
    "max_length": (8, 1 << 20, True, True),
}
DATA_RANGES = {"validation_size": (0, 1, False, False), "test_size": (0, 1, False, False),
               "train_per_class": (1, 1 << 40, True, True), "validation_per_class": (1, 1 << 40, True, True),
               "test_per_class": (1, 1 << 40, True, True), "train_examples": (1, 1 << 40, True, True)}
CHOICES = {"truncation": ("head", "tail", "head+tail"), "attention": ("auto", "sdpa", "eager"),
           "precision": ("auto", "bf16", "fp16", "fp32"),
           "selection_metric": ("auto", "f1", "f1_macro", "recall_macro", "accuracy"),
           "checkpoint": ("best", "last", "auto"), "self_distill": ("none", "model", "tfidf"),
           "scheduler": ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                         "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay")}


def _check_range(name: str, value, bounds: tuple, where: str) -> None:
    low, high, low_in, high_in = bounds
    if value is None:
        return
    ok = (value >= low if low_in else value > low) and (value <= high if high_in else value < high)
    if not ok:
        lo, hi = ("[" if low_in else "(") + f"{low:g}", f"{high:g}" + ("]" if high_in else ")")
        raise SentituneError(f"{where}: {name} = {value} is out of range {lo}, {hi}.")


def validate(cfg: TrainConfig, where: str = "config") -> TrainConfig:
    """Every field typed and in range before anything is created on disk; one line naming the field otherwise."""
    return _checked_fields(cfg, RANGES, CHOICES, where)


def _checked_fields(cfg, ranges: dict, choices: dict, where: str):
    """`cfg` (a TrainConfig or AdaptConfig) after checking its `ranges`, its data fields, its `choices`, max_steps
    and name; one line naming the field otherwise."""
    for name, bounds in ranges.items():
        _check_range(name.replace("_", "-"), getattr(cfg, name, None), bounds, where)
    for name, bounds in DATA_RANGES.items():
        _check_range(name.replace("_", "-"), getattr(cfg.data, name), bounds, where)
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise SentituneError(f"{where}: {name} = {getattr(cfg, name)!r}; use one of {', '.join(allowed)}.")
    if cfg.max_steps == 0 or cfg.max_steps < -1:
        raise SentituneError(f"{where}: max-steps = {cfg.max_steps}; "
                             "use a positive number of steps, or -1 for --epochs.")
    for name, value in (("seed", cfg.seed), ("data.seed", cfg.data.seed)):
        _check_range(name.replace("_", "-"), value, SEED_RANGE, where)
    for name, value in [*_texts(cfg), *_texts(cfg.data, "data.")]:
        if "\x00" in value:
            raise SentituneError(f"{where}: {name} = {value!r} holds a NUL character; remove it.")
    if not cfg.name or "/" in cfg.name or "\\" in cfg.name or cfg.name.startswith("."):
        raise SentituneError(f"{where}: name = {cfg.name!r}; use a plain folder name (no '/', no leading '.').")
    return cfg


SEED_RANGE = (0, (1 << 32) - 1, True, True)  # numpy's and scikit-learn's seeds


def _texts(cfg, prefix: str = "") -> list[tuple[str, str]]:
    """(field name, value) of `cfg`'s text fields that are set."""
    return [(prefix + f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
            if isinstance(getattr(cfg, f.name), str)]


def _build(values: dict, where: str, lenient: bool = False, cls: type = None):
    """A `cls` (TrainConfig by default, or AdaptConfig) from field values (`data`: a mapping of data fields), typed and
    validated; one line naming the field otherwise. `lenient` drops unknown fields instead."""
    cls = cls or TrainConfig
    known = {f.name for f in dataclasses.fields(cls)}
    data_known = {f.name for f in dataclasses.fields(DataConfig)}
    data_values = values.get("data") or {}
    if not isinstance(data_values, dict):
        raise SentituneError(f"{where}: data must be a mapping of data fields (data: {{data: ..., text_column: ...}}).")
    unknown = sorted(map(str, set(values) - known)) + sorted(f"data.{k}" for k in set(data_values) - data_known)
    if unknown and not lenient:
        command = "adapt" if cls is AdaptConfig else "train"
        raise SentituneError(f"{where}: unknown field(s) {unknown}; see `sentitune {command} --help` for the fields.")
    values = {k: v for k, v in values.items() if k in known and k != "data"}
    data = DataConfig(**_typed(DataConfig, {k: v for k, v in data_values.items() if k in data_known}, where, "data."))
    check = validate_adapt if cls is AdaptConfig else validate
    return check(cls(**_typed(cls, values, where), data=data), where)


def load_config(path: str | Path | None = None, preset: str | None = None, overrides: dict | None = None,
                lenient: bool = False, base: dict | None = None) -> TrainConfig:
    """Preset, then YAML file, then explicit overrides (CLI flags or keyword arguments), later ones winning.

    `lenient` drops fields this version does not know (reading a run folder written by another version); `base`:
    the values everything else overrides (a distilled student starts from its teacher's config)."""
    values: dict = _auto_sizes(base or {})
    if preset:
        if preset not in PRESETS:
            raise SentituneError(f"--preset {preset}: unknown; choose one of {', '.join(PRESETS)}.")
        values = _merge(values, _auto_sizes(PRESETS[preset]))
    if path:
        loaded = read_yaml(path, "--config")
        if not isinstance(loaded, dict):
            raise SentituneError(f"--config {path}: expected a mapping of field: value at the top level.")
        if loaded.get("data") is not None and not isinstance(loaded["data"], dict):
            raise SentituneError(f"--config {path}: data must be a mapping of data fields "
                                 f"(data: {{data: ..., text_column: ...}}), not {loaded['data']!r}.")
        values = _merge(values, _auto_sizes(loaded))
    values = _merge(values, _auto_sizes(_without_none(overrides or {})))
    return _build(values, str(path or preset or "config"), lenient)


# ---------------------------------------------------------------- `sentitune adapt`


@dataclass
class AdaptConfig(TrainingConfig):
    """Everything that decides a domain-adaptation run (`training.adapt`): continued masked-language-model training
    of a model on the task's own texts (the default all-MiniLM-L6-v2 has no MLM head: a fresh one trains along).
    Texts longer than max_length are cut into pieces at word starts; a batch holds pieces."""

    name: str = _default(TrainingConfig, "name", "adapted")
    batch_size: int = _default(TrainingConfig, "batch_size", 32)
    logging_steps: int = _default(TrainingConfig, "logging_steps", 50)
    splits: str = field(default="train,unsupervised", metadata={
        "help": "Where the texts come from, comma-separated: train (the rows `sentitune train` trains and validates "
                "on) and unsupervised (unlabelled texts, when the source has them). The test split is never read."})
    mlm_probability: float = field(default=0.15, metadata={
        "help": "Share of words masked; every token of a chosen word is masked (whole-word masking)."})
    eval_texts: int = field(default=1000, metadata={
        "help": "Train texts held out to score the MLM loss and perplexity at each checkpoint (at most a tenth of "
                "them; 0: none)."})
    save_steps: int = field(default=0, metadata={
        "help": "Checkpoint and score the held-out texts every N steps (0: about 4 times per epoch)."})


ADAPT_SPLITS = ("train", "unsupervised")
ADAPT_RANGES = {name: RANGES[name] for name in ("learning_rate", "epochs", "batch_size", "weight_decay",
                                                 "warmup_ratio", "save_total_limit", "logging_steps", "max_length",
                                                 "gradient_accumulation", "batch_memory_limit_gb")}
ADAPT_RANGES |= {"mlm_probability": (0, 1, False, False), "eval_texts": (0, 1 << 40, True, True),
                 "save_steps": (0, 1 << 40, True, True)}
ADAPT_CHOICES = {name: CHOICES[name] for name in ("precision", "attention", "scheduler")}


def load_adapt_config(values: dict | None = None, where: str = "adapt") -> AdaptConfig:
    """An AdaptConfig from field values (`data`: a mapping of data fields; None values left out), typed and
    validated; one line naming the field otherwise."""
    return _build(_auto_sizes(_without_none(values or {})), where, cls=AdaptConfig)


def validate_adapt(cfg: AdaptConfig, where: str = "adapt") -> AdaptConfig:
    """Every field in range before anything is read or created; one line naming the field otherwise."""
    _checked_fields(cfg, ADAPT_RANGES, ADAPT_CHOICES, where)
    adapt_splits(cfg)
    return cfg


def adapt_splits(cfg: AdaptConfig) -> tuple[str, ...]:
    """The splits adapt reads texts from; the test split is refused."""
    names = tuple(dict.fromkeys(s.strip() for s in cfg.splits.split(",") if s.strip()))
    if "test" in names:
        raise SentituneError(f"--splits {cfg.splits}: adapt never reads the test split (its texts would leak into "
                             "every later test score); use train and/or unsupervised.")
    if not names or set(names) - set(ADAPT_SPLITS):
        raise SentituneError(f"--splits {cfg.splits}: use train and/or unsupervised, comma-separated (train includes "
                             "the validation rows).")
    return names
