"""Data stage: resolve a `--data` value, read it, clean, de-duplicate, split, balance and tokenize.

Every source ends up as the same thing: a `datasets.DatasetDict` with splits train/validation/test and
columns `text`, `label` (0 negative, 1 positive), `idx` (row number in the original split), plus `rating`,
`movie` and `id` when the source has them.
"""

from __future__ import annotations

import hashlib
import html
import io
import os
import re
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import SentituneError

DEFAULT_HUB_DATASET = "stanfordnlp/imdb"
DATA_ENV = "SENTITUNE_DATA"
LOCAL_FORMS = (
    "a parquet folder (train/test .parquet), an extracted aclImdb/ folder, aclImdb_v1.tar.gz, "
    "or a .csv/.tsv/.jsonl/.parquet file"
)
TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".parquet"}
POSITIVE_WORDS = {"1", "pos", "positive", "true", "yes", "good"}
NEGATIVE_WORDS = {"0", "neg", "negative", "false", "no", "bad"}
SPLITS = ("train", "test", "unsupervised")


def default_data() -> str:
    """The `--data` default: $SENTITUNE_DATA when set (a local copy), else the Hub's IMDB."""
    return os.environ.get(DATA_ENV) or DEFAULT_HUB_DATASET


@dataclass
class DataConfig:
    """Where the labelled text comes from and how it is prepared."""

    data: str = field(default_factory=default_data, metadata={"help": f"Hub dataset id, or local {LOCAL_FORMS}. Default: ${DATA_ENV} or {DEFAULT_HUB_DATASET}."})
    test_data: str | None = field(default=None, metadata={"help": "Separate test file for single-file sources; without it a stratified test split is carved from --data."})
    text_column: str = field(default="text", metadata={"help": "Column that holds the text (table files)."})
    label_column: str = field(default="label", metadata={"help": "Column that holds the label: 0/1, pos/neg strings, or star ratings with --label-threshold."})
    label_threshold: float | None = field(default=None, metadata={"help": "Treat labels as star ratings: rating >= threshold is positive."})
    clean: bool = field(default=True, metadata={"help": "Unescape HTML entities, turn <br /> tags into spaces and normalise whitespace."})
    drop_duplicates: bool = field(default=True, metadata={"help": "Drop exact duplicate texts inside train."})
    drop_test_overlap: bool = field(default=False, metadata={"help": "Drop train texts that also occur in test (always reported)."})
    validation_size: float = field(default=0.1, metadata={"help": "Share of train held out for validation (grouped by movie when known, stratified by label)."})
    test_size: float = field(default=0.2, metadata={"help": "Share carved out as test when the source has no test split."})
    train_per_class: int | None = field(default=None, metadata={"help": "Balanced sample of N train examples per class (None: all)."})
    validation_per_class: int | None = field(default=None, metadata={"help": "Balanced sample of N validation examples per class (None: all)."})
    test_per_class: int | None = field(default=None, metadata={"help": "Balanced sample of N test examples per class (None: the whole test split)."})
    seed: int = field(default=42, metadata={"help": "Seed for every sample and split."})
    validation_in_train: bool = field(default=False, metadata={"help": "Final fit: also train on the validation rows (after a search chose the settings); validation metrics are then in-sample and flagged so."})


# ---------------------------------------------------------------- reading sources


def read_source(source: str, cfg: DataConfig | None = None) -> dict[str, pd.DataFrame]:
    """Read `source` into {split: DataFrame} with columns text, label and any of rating/movie/id."""
    cfg = cfg or DataConfig(data=source)
    path = Path(source).expanduser()
    if path.is_dir():
        frames = _read_folder(path)
    elif path.is_file():
        frames = _read_file_source(path, cfg)
    elif path.suffix.lower() in TABLE_SUFFIXES | {".gz"} or source.startswith((".", "/", "~")):
        raise SentituneError(f"--data: {source} does not exist; pass {LOCAL_FORMS}.")
    else:
        frames = _read_hub(source, cfg)
    for split, df in frames.items():
        frames[split] = _normalise_labels(df, cfg, f"{source} [{split}]", allow_unlabelled=split == "unsupervised")
    return frames


def _read_folder(path: Path) -> dict[str, pd.DataFrame]:
    if (path / "train" / "pos").is_dir() or (path / "aclImdb").is_dir():
        return _read_acl_folder(path / "aclImdb" if (path / "aclImdb").is_dir() else path)
    frames = {}
    for split in SPLITS:
        files = sorted(path.glob(f"{split}*.parquet"))
        if files:
            frames[split] = pd.concat([_read_parquet(f) for f in files], ignore_index=True)
    if "train" not in frames:
        raise SentituneError(f"--data: {path} holds neither train*.parquet nor an aclImdb layout (train/pos, train/neg); pass {LOCAL_FORMS}.")
    return frames


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise SentituneError(f"{path}: not a readable parquet file ({type(exc).__name__}); check the file or convert it to CSV/JSONL.") from None


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SentituneError(f"{where}: invalid UTF-8 at byte offset {exc.start}; re-encode the file as UTF-8.") from None


_ACL_NAME = re.compile(r"(\d+)_(\d+)\.txt$")
_MOVIE_ID = re.compile(r"title/(tt\d+)")


def _acl_rows(entries: dict[str, bytes], split: str) -> pd.DataFrame:
    """Rows of one aclImdb split from {relative path: bytes} (shared by the folder and the tarball)."""
    rows = []
    for polarity, label in (("neg", 0), ("pos", 1), ("unsup", -1)):
        urls = entries.get(f"{split}/urls_{polarity}.txt")
        movies = _decode(urls, f"{split}/urls_{polarity}.txt").split() if urls else []
        for name, raw in entries.items():
            if not name.startswith(f"{split}/{polarity}/"):
                continue
            match = _ACL_NAME.search(name)
            if not match:
                continue
            review_id, rating = int(match.group(1)), int(match.group(2))
            movie = _MOVIE_ID.search(movies[review_id]) if review_id < len(movies) else None
            rows.append({"id": review_id, "rating": rating if label >= 0 else 0, "label": label,
                         "movie": movie.group(1) if movie else None, "text": _decode(raw, name)})
    df = pd.DataFrame(rows, columns=["id", "rating", "label", "movie", "text"])
    return df.sort_values(["label", "id"], ignore_index=True)


def _read_acl_folder(root: Path) -> dict[str, pd.DataFrame]:
    entries = {str(p.relative_to(root)): p.read_bytes() for p in root.glob("*/*/*.txt")}
    entries |= {str(p.relative_to(root)): p.read_bytes() for p in root.glob("*/urls_*.txt")}
    return _acl_frames(entries, str(root))


def _read_acl_tarball(path: Path) -> dict[str, pd.DataFrame]:
    entries = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".txt"):
                    name = member.name.split("aclImdb/", 1)[-1]
                    entries[name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SentituneError(f"{path}: not a readable tar.gz archive ({str(exc).splitlines()[0]}); pass aclImdb_v1.tar.gz as downloaded.") from None
    return _acl_frames(entries, str(path))


def _acl_frames(entries: dict[str, bytes], where: str) -> dict[str, pd.DataFrame]:
    frames = {split: _acl_rows(entries, split) for split in ("train", "test")}
    unsup = _acl_rows(entries, "train").pipe(lambda df: df[df.label == -1])
    frames["train"] = frames["train"][frames["train"].label >= 0].reset_index(drop=True)
    if len(unsup):
        frames["unsupervised"] = unsup.reset_index(drop=True)
    if frames["train"].empty:
        raise SentituneError(f"--data: {where} has no reviews under train/pos or train/neg; pass an extracted aclImdb/ folder.")
    return {k: v for k, v in frames.items() if not v.empty}


def _read_file_source(path: Path, cfg: DataConfig) -> dict[str, pd.DataFrame]:
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return _read_acl_tarball(path)
    train = read_table(path, cfg)
    if cfg.test_data:
        return {"train": train, "test": read_table(Path(cfg.test_data), cfg)}
    return {"train": train}


def read_table(path: Path, cfg: DataConfig) -> pd.DataFrame:
    """Read one CSV/TSV/JSONL/parquet file and rename its text/label columns to `text`/`label`."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SentituneError(f"{path}: file not found; check the path given to --data/--test-data.")
    if suffix not in TABLE_SUFFIXES:
        raise SentituneError(f"{path}: unknown format '{suffix}'; use .csv, .tsv, .jsonl or .parquet (or an aclImdb folder/tarball).")
    if suffix == ".parquet":
        df = _read_parquet(path)
    else:
        text = _decode(path.read_bytes(), str(path))
        try:
            if suffix in {".csv", ".tsv"}:
                df = pd.read_csv(io.StringIO(text), sep="\t" if suffix == ".tsv" else ",")
            else:
                df = pd.read_json(io.StringIO(text), lines=suffix == ".jsonl")
        except ValueError as exc:
            raise SentituneError(f"{path}: cannot parse as {suffix[1:].upper()} ({str(exc).splitlines()[0]}); fix the file.") from None
    missing = [c for c in (cfg.text_column, cfg.label_column) if c not in df.columns]
    if missing:
        raise SentituneError(f"{path}: missing column(s) {missing}; columns found: {list(df.columns)}; pass --text-column/--label-column.")
    df = df.rename(columns={cfg.text_column: "text", cfg.label_column: "label"})
    return df[[c for c in ("text", "label", "rating", "movie", "id") if c in df.columns]]


def _read_hub(dataset_id: str, cfg: DataConfig) -> dict[str, pd.DataFrame]:
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as exc:  # offline, unknown id, auth: all end the same way for the user
        raise SentituneError(
            f"--data: cannot load '{dataset_id}' from the Hugging Face Hub ({type(exc).__name__}); "
            f"offline, pass {LOCAL_FORMS} to --data or set ${DATA_ENV}."
        ) from None
    frames = {}
    for split, ds in loaded.items():
        df = ds.to_pandas()
        if cfg.text_column in df.columns and cfg.label_column in df.columns:
            frames[split] = df.rename(columns={cfg.text_column: "text", cfg.label_column: "label"})
    if "train" not in frames:
        raise SentituneError(f"--data: '{dataset_id}' has no train split with columns {cfg.text_column}/{cfg.label_column}; pass --text-column/--label-column.")
    return frames


def _normalise_labels(df: pd.DataFrame, cfg: DataConfig, where: str, allow_unlabelled: bool) -> pd.DataFrame:
    """Map labels to 0/1 (or -1 for unlabelled splits) and check texts; one-line errors otherwise."""
    df = df.copy()
    if df["text"].isna().any() or (df["text"].astype(str).str.strip() == "").any():
        row = int(np.flatnonzero(df["text"].isna() | (df["text"].astype(str).str.strip() == ""))[0])
        raise SentituneError(f"{where}: empty text at row {row} of column '{cfg.text_column}'; remove or fill empty rows.")
    df["text"] = df["text"].astype(str)
    if allow_unlabelled:
        df["label"] = -1
        return df
    df["label"] = _labels_to_int(df["label"], cfg, where)
    return df


def _labels_to_int(labels: pd.Series, cfg: DataConfig, where: str) -> np.ndarray:
    if labels.isna().any():
        raise SentituneError(f"{where}: missing label at row {int(np.flatnonzero(labels.isna())[0])} of column '{cfg.label_column}'; fill or drop it.")
    if cfg.label_threshold is not None:
        numeric = pd.to_numeric(labels, errors="coerce")
        if numeric.isna().any():
            bad = labels[numeric.isna()].iloc[0]
            raise SentituneError(f"{where}: label '{bad}' in column '{cfg.label_column}' is not a number; --label-threshold needs star ratings.")
        return (numeric >= cfg.label_threshold).astype(int).to_numpy()
    words = labels.astype(str).str.strip().str.lower().str.replace(r"\.0$", "", regex=True)
    unknown = sorted(set(words) - POSITIVE_WORDS - NEGATIVE_WORDS)
    if unknown:
        raise SentituneError(
            f"{where}: labels {unknown[:5]} in column '{cfg.label_column}' are not 0/1 or pos/neg; "
            "map them, or pass --label-threshold for star ratings."
        )
    return words.isin(POSITIVE_WORDS).astype(int).to_numpy()


# ---------------------------------------------------------------- cleaning and preparation

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """HTML entities to characters, <br /> tags to spaces, runs of whitespace to one space."""
    return _SPACES.sub(" ", _BR.sub(" ", html.unescape(text))).strip()


def _balanced_sample(df: pd.DataFrame, per_class: int | None, seed: int, where: str) -> pd.DataFrame:
    if per_class is None:
        return df
    counts = df["label"].value_counts()
    short = {int(k): int(v) for k, v in counts.items() if v < per_class}
    if short:
        raise SentituneError(f"{where}: asked for {per_class} per class but only {short} available; lower the *_per_class setting.")
    parts = [g.sample(n=per_class, random_state=seed) for _, g in df.groupby("label")]
    return pd.concat(parts).sort_values("idx", ignore_index=True)


def holdout_mask(df: pd.DataFrame, size: float, seed: int, what: str = "validation_size") -> np.ndarray:
    """Rows to hold out: grouped by movie when known (no movie on both sides), stratified by label, seeded."""
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    if not 0 < size < 1:
        raise SentituneError(f"{what}={size}: must be a share between 0 and 1, e.g. 0.1.")
    mask, held = np.zeros(len(df), dtype=bool), None
    groups = df["movie"].nunique() if "movie" in df.columns and df["movie"].notna().all() else 0
    if groups >= 4:
        folds = StratifiedGroupKFold(n_splits=min(max(2, round(1 / size)), groups), shuffle=True, random_state=seed)
        held = next((h for _, h in folds.split(df, df["label"], groups=df["movie"]) if df["label"].iloc[h].nunique() == 2), None)
    if held is None:
        _, held = train_test_split(np.arange(len(df)), test_size=size, stratify=df["label"], random_state=seed)
    mask[held] = True
    return mask


def _check_classes(df: pd.DataFrame, split: str, source: str) -> None:
    if df.empty:
        raise SentituneError(f"{source}: split '{split}' would be empty; lower validation_size/*_per_class or add data.")
    if df["label"].nunique() < 2:
        raise SentituneError(f"{source}: split '{split}' has a single class ({int(df['label'].iloc[0])}); sentiment needs both negative and positive examples.")


def prepare_frames(cfg: DataConfig, frames: dict[str, pd.DataFrame] | None = None) -> tuple[dict[str, pd.DataFrame], dict]:
    """Clean, de-duplicate, split and balance; returns {train, validation, test} frames and a report."""
    frames = frames or read_source(cfg.data, cfg)
    frames = {k: v.assign(idx=np.arange(len(v))) for k, v in frames.items() if k != "unsupervised"}
    if cfg.clean:
        frames = {k: v.assign(text=v["text"].map(clean_text)) for k, v in frames.items()}
    train = frames["train"]
    _check_classes(train, "train", cfg.data)
    report: dict = {"source": cfg.data, "raw_rows": {k: len(v) for k, v in frames.items()}}
    if "test" not in frames:
        held = holdout_mask(train, cfg.test_size, cfg.seed, "test_size")
        frames["test"], train = train[held], train[~held]
        report["test_carved_from_train"] = cfg.test_size
    test = frames["test"]
    duplicated = train["text"].duplicated()
    report["train_duplicates"] = int(duplicated.sum())
    report["test_duplicates"] = int(test["text"].duplicated().sum())
    if cfg.drop_duplicates:
        train = train[~duplicated]
    overlap = train["text"].isin(set(test["text"]))
    report["train_test_overlap"] = int(overlap.sum())
    if cfg.drop_test_overlap:
        train = train[~overlap]
    train = train.reset_index(drop=True)
    held = holdout_mask(train, cfg.validation_size, cfg.seed)
    out = {
        "train": _balanced_sample(train[~held], cfg.train_per_class, cfg.seed, f"{cfg.data} [train]"),
        "validation": _balanced_sample(train[held], cfg.validation_per_class, cfg.seed, f"{cfg.data} [validation]"),
        "test": _balanced_sample(test, cfg.test_per_class, cfg.seed, f"{cfg.data} [test]"),
    }
    for split, df in out.items():
        _check_classes(df, split, cfg.data)
    if cfg.validation_in_train:
        out["train"] = pd.concat([out["train"], out["validation"]]).sort_values("idx", ignore_index=True)
        report["validation_in_train"] = True
    if "movie" in train.columns:
        report["validation_grouped_by"] = "movie"
        report["movies_in_train_and_validation"] = len(set(out["train"]["movie"]) & set(out["validation"]["movie"]))
    report["rows"] = {k: len(v) for k, v in out.items()}
    report["per_class"] = {k: {int(c): int(n) for c, n in v["label"].value_counts().sort_index().items()} for k, v in out.items()}
    report["config"] = asdict(cfg)
    return out, report


def prepare_splits(cfg: DataConfig):
    """`prepare_frames` as a `datasets.DatasetDict` (train/validation/test) plus the report."""
    import datasets

    frames, report = prepare_frames(cfg)
    dd = datasets.DatasetDict({k: datasets.Dataset.from_pandas(v, preserve_index=False) for k, v in frames.items()})
    return dd, report


def examples_descriptor(ds, split: str, cfg: DataConfig) -> dict:
    """Which examples an evaluation used; evaluations compare only when the fingerprints are equal."""
    digest = hashlib.sha256()
    for i, label in zip(ds["idx"], ds["label"]):
        digest.update(f"{i}:{label};".encode())
    per_class = cfg.test_per_class if split == "test" else cfg.validation_per_class
    return {"source": cfg.data, "split": split, "seed": cfg.seed, "size": len(ds), "per_class": per_class,
            "fingerprint": digest.hexdigest()[:16]}


# ---------------------------------------------------------------- tokenisation

TRUNCATIONS = ("head", "tail", "head+tail")


def truncate_ids(ids: list[int], keep: int, strategy: str) -> list[int]:
    """Keep `keep` token ids: the first ones, the last ones, or a quarter head and the rest tail (Sun et al. 2019)."""
    if len(ids) <= keep:
        return ids
    if strategy == "head":
        return ids[:keep]
    if strategy == "tail":
        return ids[-keep:]
    head = keep // 4
    return ids[:head] + ids[len(ids) - (keep - head):]


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a single text ([CLS] ... [SEP] for BERT)."""
    with_special = tokenizer("sentiment")["input_ids"]
    plain = tokenizer("sentiment", add_special_tokens=False)["input_ids"]
    start = next(i for i in range(len(with_special)) if with_special[i:i + len(plain)] == plain)
    return with_special[:start], with_special[start + len(plain):]


def tokenize_function(tokenizer, max_length: int, truncation: str):
    """A batched `datasets.map` function: input_ids/attention_mask (no padding) plus n_tokens and truncated."""
    if truncation not in TRUNCATIONS:
        raise SentituneError(f"truncation='{truncation}': use one of {', '.join(TRUNCATIONS)}.")
    prefix, suffix = special_tokens_around(tokenizer)
    keep = max_length - len(prefix) - len(suffix)

    def tokenize(batch):
        encoded = tokenizer(batch["text"], add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        ids = [prefix + truncate_ids(e, keep, truncation) + suffix for e in encoded]
        return {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids],
                "n_tokens": [len(e) + len(prefix) + len(suffix) for e in encoded], "truncated": [len(e) > keep for e in encoded]}

    return tokenize


def tokenize_splits(splits, tokenizer, max_length: int = 256, truncation: str = "head+tail", cache_dir: str | None = None,
                    use_cache: bool = True):
    """Tokenize every split through `datasets.map`, cached on disk by content, tokenizer and settings.

    `use_cache=False` keeps the result in memory (DDP ranks other than 0, so that two processes never
    write the same cache file)."""
    cache = Path(cache_dir or os.environ.get("SENTITUNE_CACHE", Path.home() / ".cache" / "sentitune")) / "tokenized"
    cache.mkdir(parents=True, exist_ok=True)
    fn = tokenize_function(tokenizer, max_length, truncation)
    out = {}
    for split, ds in splits.items():
        key = hashlib.sha256(f"{ds._fingerprint}|{tokenizer.name_or_path}|{len(tokenizer)}|{max_length}|{truncation}".encode()).hexdigest()[:20]
        out[split] = ds.map(fn, batched=True, batch_size=1000, cache_file_name=str(cache / f"{key}.arrow") if use_cache else None,
                            load_from_cache_file=use_cache, desc=f"tokenize {split}")
    return type(splits)(out)
