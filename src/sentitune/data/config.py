"""The data settings: one dataclass whose fields are also `sentitune train` flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_HUB_DATASET = "stanfordnlp/imdb"
DATA_ENV = "SENTITUNE_DATA"
LOCAL_FORMS = (
    "a parquet folder (train/test .parquet), an extracted aclImdb/ folder, aclImdb_v1.tar.gz, "
    "or a .csv/.tsv/.jsonl/.parquet file"
)


def default_data() -> str:
    """The `--data` default: $SENTITUNE_DATA when set (a local copy), else the Hub's IMDB."""
    return os.environ.get(DATA_ENV) or DEFAULT_HUB_DATASET


@dataclass
class DataConfig:
    """Where the labelled text comes from and how it is prepared."""

    data: str = field(default_factory=default_data, metadata={
        "help": f"Hub dataset id, or {LOCAL_FORMS}. Default: ${DATA_ENV} or {DEFAULT_HUB_DATASET}."})
    test_data: str | None = field(default=None, metadata={
        "help": "Separate test file for single-file sources; without it a stratified test split is carved out."})
    text_column: str = field(default="text", metadata={"help": "Column that holds the text."})
    label_column: str = field(default="label", metadata={
        "help": "Column that holds the label: integers, names (neg/neu/pos, '1 star'...), "
                "or ratings with --label-threshold."})
    labels: str | None = field(default=None, metadata={
        "help": "Classes in order, lowest first, comma-separated as they appear in the data (e.g. neg,neu,pos). "
                "Default: inferred (known sentiment names in order, integers ascending)."})
    ordinal: bool | None = field(default=None, metadata={
        "help": "The classes are an ordered scale (adds MAE, within-one accuracy, quadratic kappa). "
                "Default: when the names say so (negative < neutral < positive, stars)."})
    label_threshold: float | None = field(default=None, metadata={
        "help": "Labels are ratings: rating >= threshold is positive, below is negative (binary)."})
    clean: bool = field(default=True, metadata={
        "help": "Unescape HTML entities, turn <br /> tags into spaces and normalise whitespace."})
    drop_duplicates: bool = field(default=True, metadata={"help": "Drop exact duplicate texts inside train."})
    drop_test_overlap: bool = field(default=False, metadata={
        "help": "Drop train texts that also occur in test (always reported)."})
    validation_size: float = field(default=0.1, metadata={
        "help": "Share of train held out for validation when the source has no validation split "
                "(grouped by movie when known, stratified by class)."})
    test_size: float = field(default=0.2, metadata={
        "help": "Share carved out as test when the source has no test split."})
    train_per_class: int | None = field(default=None, metadata={
        "help": "Sample N train examples per class (None: all)."})
    train_examples: int | None = field(default=None, metadata={
        "help": "Stratified sample of N train examples, class shares kept (None: all)."})
    validation_per_class: int | None = field(default=None, metadata={
        "help": "Sample N validation examples per class (None: all)."})
    test_per_class: int | None = field(default=None, metadata={
        "help": "Sample N test examples per class (None: the whole test split)."})
    seed: int = field(default=42, metadata={"help": "Seed for every sample and split."})
    validation_in_train: bool = field(default=False, metadata={
        "help": "Final fit: also train on the validation rows (after a search chose the settings); "
                "validation metrics are then in-sample and flagged so."})
