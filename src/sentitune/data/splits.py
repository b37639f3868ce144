"""Preparing splits: labels encoded to class ids, text cleaned, duplicates dropped, validation held out (grouped
by movie when known, stratified by class), per-class samples drawn; and the fingerprint of the examples used.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import asdict

import numpy as np
import pandas as pd

from ..core.errors import SentituneError
from ..core.labels import LabelScheme, infer_scheme
from .config import DataConfig
from .sources import read_source

BREAK_TAGS = re.compile(r"<br\s*/?>", re.IGNORECASE)
WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """HTML entities to characters, <br /> tags to spaces, runs of whitespace to one space."""
    return WHITESPACE.sub(" ", BREAK_TAGS.sub(" ", html.unescape(text))).strip()


def sample_per_class(df: pd.DataFrame, per_class: int | None, seed: int, short: dict | None = None) -> pd.DataFrame:
    """`per_class` random rows of each class (all rows when None). A class with fewer rows keeps all of them (small
    or imbalanced data); `short`, when given, receives {class id: rows it had} for each such class."""
    if per_class is None:
        return df
    if short is not None:
        short.update({int(k): int(v) for k, v in df["label"].value_counts().items() if v < per_class})
    parts = [g.sample(n=min(per_class, len(g)), random_state=seed) for _, g in df.groupby("label")]
    return pd.concat(parts).sort_values("idx", ignore_index=True)


def stratified_sample(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """A random sample of `n` rows that keeps each class's share (all rows when None or n >= len)."""
    from sklearn.model_selection import train_test_split

    if n is None or n >= len(df):
        return df
    if n < 1:
        raise SentituneError(f"--train-examples {n}: must be at least 1.")
    try:
        keep, _ = train_test_split(np.arange(len(df)), train_size=n, stratify=df["label"], random_state=seed)
    except ValueError as exc:  # fewer examples than classes, or a class of one
        raise SentituneError(f"--train-examples {n}: cannot keep every class's share of {len(df)} examples "
                             f"({_first_line(exc)}); raise it or leave it out.") from None
    return df.iloc[np.sort(keep)].reset_index(drop=True)


def holdout_mask(df: pd.DataFrame, size: float, seed: int, what: str = "validation_size",
                 where: str = "--data") -> np.ndarray:
    """Rows to hold out: grouped by movie when known (no movie on both sides), stratified by class, seeded."""
    if not 0 < size < 1:
        raise SentituneError(f"{what}={size}: must be a share between 0 and 1, e.g. 0.1.")
    try:
        return _holdout_mask(df, size, seed)
    except ValueError as exc:  # a class of one, or fewer rows on a side than classes
        raise SentituneError(f"{where}: cannot hold out {what} {size:g} of {len(df)} rows with every class on both "
                             f"sides ({_first_line(exc)}); add examples of the small classes or change "
                             f"--{what.replace('_', '-')}.") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]


def _holdout_mask(df: pd.DataFrame, size: float, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    mask, held = np.zeros(len(df), dtype=bool), None
    groups = df["movie"].nunique() if "movie" in df.columns and df["movie"].notna().all() else 0
    classes = df["label"].nunique()
    if groups >= 4:
        folds = StratifiedGroupKFold(n_splits=min(max(2, round(1 / size)), groups), shuffle=True, random_state=seed)
        held = next((h for _, h in folds.split(df, df["label"], groups=df["movie"])
                     if df["label"].iloc[h].nunique() == classes), None)
    if held is None:
        _, held = train_test_split(np.arange(len(df)), test_size=size, stratify=df["label"], random_state=seed)
    mask[held] = True
    return mask


def check_classes(df: pd.DataFrame, split: str, source: str, scheme: LabelScheme, minimum: int = 1) -> None:
    """Every class present at least `minimum` times in `split`; one-line errors naming the class otherwise."""
    if df.empty:
        raise SentituneError(f"{source}: split '{split}' would be empty; "
                             "lower validation_size/*_per_class or add data.")
    counts = np.bincount(df["label"].to_numpy(int), minlength=scheme.n)
    short = {scheme.names[i]: int(c) for i, c in enumerate(counts) if c < minimum}
    if short:
        raise SentituneError(f"{source}: split '{split}' has too few examples of class(es) {short} (need {minimum}); "
                             "add examples, or list only the classes to keep with --labels.")


def label_scheme(frames: dict[str, pd.DataFrame], cfg: DataConfig) -> LabelScheme:
    """The classes of the labelled splits: a threshold on ratings (binary), `--labels`, or inferred."""
    labelled = pd.concat([f["label"] for k, f in frames.items() if k != "unsupervised"], ignore_index=True)
    if cfg.label_threshold is not None:
        numeric = pd.to_numeric(labelled, errors="coerce")
        if numeric.isna().any():
            bad = labelled[numeric.isna()].iloc[0]
            raise SentituneError(f"{cfg.data}: label '{bad}' in column '{cfg.label_column}' is not a number; "
                                 "--label-threshold needs ratings.")
        return LabelScheme(("negative", "positive"), False, ("0", "1"))
    names = None
    if all("label_name" in f.columns for k, f in frames.items() if k != "unsupervised"):
        pairs = pd.concat([f[["label", "label_name"]] for k, f in frames.items()
                           if k != "unsupervised"]).drop_duplicates()
        if pd.api.types.is_integer_dtype(pairs["label"]) and pairs["label"].is_unique:
            names = dict(zip(pairs["label"].astype(int), pairs["label_name"].astype(str)))
    return infer_scheme(labelled, cfg.labels, cfg.ordinal, names, where=f"{cfg.data} column '{cfg.label_column}'")


def encode_labels(df: pd.DataFrame, scheme: LabelScheme, cfg: DataConfig, where: str) -> pd.DataFrame:
    if cfg.label_threshold is not None:
        return df.assign(label=(pd.to_numeric(df["label"]) >= cfg.label_threshold).astype(int))
    return df.assign(label=scheme.encode(df["label"], where, cfg.label_column))


def class_shares(df: pd.DataFrame, scheme: LabelScheme) -> dict[str, float]:
    counts = np.bincount(df["label"].to_numpy(int), minlength=scheme.n)
    return {name: round(float(c / max(counts.sum(), 1)), 4) for name, c in zip(scheme.names, counts)}


def prepare_frames(cfg: DataConfig,
                   frames: dict[str, pd.DataFrame] | None = None) -> tuple[dict[str, pd.DataFrame], dict]:
    """Encode labels, clean, de-duplicate, split and sample; returns {train, validation, test} frames and a report
    (with the label scheme under `labels`)."""
    frames = frames or read_source(cfg.data, cfg)
    frames = {k: v.assign(idx=np.arange(len(v))) for k, v in frames.items() if k != "unsupervised"}
    scheme = label_scheme(frames, cfg)
    frames = {k: encode_labels(v, scheme, cfg, f"{cfg.data} [{k}]") for k, v in frames.items()}
    if cfg.clean:
        frames = {k: v.assign(text=v["text"].map(clean_text)) for k, v in frames.items()}
    train = frames["train"]
    check_classes(train, "train", cfg.data, scheme, minimum=2)
    report: dict = {"source": cfg.data, "labels": scheme.to_dict(), "raw_rows": {k: len(v) for k, v in frames.items()}}
    if "test" not in frames:
        held = holdout_mask(train, cfg.test_size, cfg.seed, "test_size", cfg.data)
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
    if "validation" in frames:
        validation = frames["validation"]
        report["validation_from_source"] = True
    else:
        held = holdout_mask(train, cfg.validation_size, cfg.seed, where=cfg.data)
        train, validation = train[~held].reset_index(drop=True), train[held]
        if "movie" in train.columns:
            report["validation_grouped_by"] = "movie"
    report["available"] = {k: {int(c): int(n) for c, n in v["label"].value_counts().sort_index().items()}
                           for k, v in (("train", train), ("validation", validation), ("test", test))}
    short: dict = {"train": {}, "validation": {}, "test": {}}
    out = {"train": stratified_sample(sample_per_class(train, cfg.train_per_class, cfg.seed, short["train"]),
                                      cfg.train_examples, cfg.seed),
           "validation": sample_per_class(validation, cfg.validation_per_class, cfg.seed, short["validation"]),
           "test": sample_per_class(test, cfg.test_per_class, cfg.seed, short["test"])}
    report["short_classes"] = {k: v for k, v in short.items() if v}
    for split, df in out.items():
        check_classes(df, split, cfg.data, scheme)
    if cfg.validation_in_train:
        out["train"] = pd.concat([out["train"], out["validation"]]).sort_values("idx", ignore_index=True)
        report["validation_in_train"] = True
    if report.get("validation_grouped_by") == "movie":
        report["movies_in_train_and_validation"] = len(set(out["train"]["movie"]) & set(out["validation"]["movie"]))
    report["rows"] = {k: len(v) for k, v in out.items()}
    report["per_class"] = {k: {int(c): int(n) for c, n in v["label"].value_counts().sort_index().items()}
                           for k, v in out.items()}
    report["class_shares"] = {"train": class_shares(frames["train"], scheme), "test": class_shares(test, scheme)}
    report["config"] = asdict(cfg)
    return out, report


def sampling_note(report: dict, cfg: DataConfig) -> str | None:
    """One line saying which classes had fewer rows than the per-class sizes asked for (all of them were taken),
    or None when every class had enough."""
    names = LabelScheme.from_dict(report["labels"]).names
    asked = {"train": cfg.train_per_class, "validation": cfg.validation_per_class, "test": cfg.test_per_class}
    parts = [f"{split}: all {n:,} of {names[c]}" for split, short in report.get("short_classes", {}).items()
             for c, n in sorted(short.items())]
    if not parts:
        return None
    sizes = ", ".join(f"{split} {asked[split]:,}" for split in report["short_classes"])
    return (f"{cfg.data}: some classes have fewer rows than the per-class sizes asked for ({sizes}), so each keeps "
            f"what it has ({'; '.join(parts)}); the rest is a per-class sample.")


def scoring_frame(cfg: DataConfig, split: str = "test") -> tuple[pd.DataFrame, dict]:
    """One whole split of a labelled dataset to score with a trained model (a single file counts as that split):
    labels encoded, text cleaned, `test_per_class` sampled when set; the frame and a report with its labels."""
    frames = read_source(cfg.data, cfg)
    if split not in frames:
        if set(frames) - {"unsupervised"} != {"train"}:
            raise SentituneError(f"--data {cfg.data}: no '{split}' split (has {sorted(frames)}); pass --split.")
        frames = {split: frames["train"]}
    frame = frames[split].assign(idx=lambda d: np.arange(len(d)))
    scheme = label_scheme({split: frame}, cfg)
    frame = encode_labels(frame, scheme, cfg, f"{cfg.data} [{split}]")
    if cfg.clean:
        frame = frame.assign(text=frame["text"].map(clean_text))
    frame = sample_per_class(frame, cfg.test_per_class, cfg.seed)
    return frame.reset_index(drop=True), {"source": cfg.data, "labels": scheme.to_dict(), "rows": {split: len(frame)}}


def prepare_splits(cfg: DataConfig, frames: dict[str, pd.DataFrame] | None = None):
    """`prepare_frames` as a `datasets.DatasetDict` (train/validation/test) plus the report; `frames`: the source
    as `read_source` returned it, when the caller has read it already."""
    import datasets

    frames, report = prepare_frames(cfg, frames)
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


