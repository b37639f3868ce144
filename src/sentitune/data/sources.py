"""Reading a `--data` value: a Hub dataset id, a parquet folder, an aclImdb folder or tarball, or one table file.

Every source becomes {split: DataFrame} with columns `text`, `label` (the data's raw labels; -1 for unlabelled
rows) and any of `label_name`, `rating`, `movie`, `id`. Labels are encoded into class ids later
(`splits.prepare_frames`), once the label scheme is known from every split.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import SentituneError
from ..core.io import decode_utf8
from .config import DATA_ENV, LOCAL_FORMS, DataConfig

TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".parquet"}
SPLITS = ("train", "validation", "test", "unsupervised")
EXTRA_COLUMNS = ("label_name", "rating", "movie", "id")

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
    return {split: _checked(df, cfg, f"{source} [{split}]", unlabelled=split == "unsupervised")
            for split, df in frames.items()}


def _checked(df: pd.DataFrame, cfg: DataConfig, where: str, unlabelled: bool) -> pd.DataFrame:
    """Columns renamed to text/label (+ extras), texts checked; unlabelled splits get label -1."""
    needed = [cfg.text_column] + ([] if unlabelled else [cfg.label_column])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise SentituneError(f"{where}: missing column(s) {missing}; columns found: {list(df.columns)}; "
                             "pass --text-column/--label-column.")
    if cfg.text_column == cfg.label_column:
        raise SentituneError(f"{where}: --text-column and --label-column both name '{cfg.text_column}'; "
                             "pass the column that holds the text and the one that holds the label.")
    renames = {cfg.text_column: "text", cfg.label_column: "label"}
    made = {new for old, new in renames.items() if old in df.columns}
    # a column already called text or label that is not the one chosen is dropped, not doubled by the rename
    df = df.drop(columns=[c for c in df.columns if c in made and c not in renames]).rename(columns=renames)
    df = df[[c for c in ("text", "label", *EXTRA_COLUMNS) if c in df.columns]].copy()
    text = df["text"]
    is_text = text.map(lambda t: isinstance(t, str)).astype(bool)  # an empty column maps to str dtype
    if not (is_text | text.isna()).all():
        kind = type(text[~is_text & text.notna()].iloc[0]).__name__
        raise SentituneError(f"{where}: column '{cfg.text_column}' holds {kind} values, not text; pass the text column "
                             "with --text-column.")
    empty = text.isna() | (text.fillna("").str.strip() == "")
    if empty.any():
        raise SentituneError(f"{where}: empty text at row {int(np.flatnonzero(empty)[0])} "
                             f"of column '{cfg.text_column}'; remove or fill empty rows.")
    if unlabelled:
        df["label"] = -1
        return df.reset_index(drop=True)
    missing = df["label"].map(_missing).astype(bool)
    if missing.any():
        raise SentituneError(f"{where}: missing label at row {int(np.flatnonzero(missing)[0])} of column "
                             f"'{cfg.label_column}'; fill or drop it.")
    nested = df["label"].map(lambda v: isinstance(v, (list, dict, np.ndarray))).astype(bool)
    if nested.any():
        kind = type(df["label"][nested].iloc[0]).__name__
        raise SentituneError(f"{where}: the label at row {int(np.flatnonzero(nested)[0])} of column "
                             f"'{cfg.label_column}' is a {kind}, not a class; give one class per row.")
    return df.reset_index(drop=True)


def _missing(label) -> bool:
    """A label that is absent: NaN/None or blank text (a CSV's empty field is NaN already)."""
    if isinstance(label, str):
        return not label.strip()
    return not isinstance(label, (list, dict, np.ndarray)) and bool(pd.isna(label))


def _read_folder(path: Path) -> dict[str, pd.DataFrame]:
    if (path / "train" / "pos").is_dir() or (path / "aclImdb").is_dir():
        return _read_acl_folder(path / "aclImdb" if (path / "aclImdb").is_dir() else path)
    frames = {}
    for split in SPLITS:
        files = sorted(path.glob(f"{split}*.parquet"))
        if files:
            frames[split] = pd.concat([_read_parquet(f) for f in files], ignore_index=True)
    if "train" not in frames:
        raise SentituneError(f"--data: {path} holds neither train*.parquet nor an aclImdb layout "
                             f"(train/pos, train/neg); pass {LOCAL_FORMS}.")
    return frames


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path).read()
        return table.rename_columns(_unique(table.column_names)).to_pandas()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise SentituneError(f"{path}: not a readable parquet file ({type(exc).__name__}); "
                             "check the file or convert it to CSV/JSONL.") from None


def _unique(names: list[str]) -> list[str]:
    """Column names with repeats numbered as pandas' CSV reader numbers them (text, text.1, ...)."""
    seen: set[str] = set()
    out = []
    for name in names:
        new, i = name, 0
        while new in seen:
            i += 1
            new = f"{name}.{i}"
        seen.add(new)
        out.append(new)
    return out


_ACL_NAME = re.compile(r"(\d+)_(\d+)\.txt$")
_MOVIE_ID = re.compile(r"title/(tt\d+)")


def _acl_rows(entries: dict[str, bytes], split: str) -> pd.DataFrame:
    """Rows of one aclImdb split from {relative path: bytes} (shared by the folder and the tarball)."""
    rows = []
    for polarity, label in (("neg", 0), ("pos", 1), ("unsup", -1)):
        urls = entries.get(f"{split}/urls_{polarity}.txt")
        movies = decode_utf8(urls, f"{split}/urls_{polarity}.txt").split() if urls else []
        for name, raw in entries.items():
            if not name.startswith(f"{split}/{polarity}/"):
                continue
            match = _ACL_NAME.search(name)
            if not match:
                continue
            review_id, rating = int(match.group(1)), int(match.group(2))
            movie = _MOVIE_ID.search(movies[review_id]) if review_id < len(movies) else None
            rows.append({"id": review_id, "rating": rating if label >= 0 else 0, "label": label,
                         "movie": movie.group(1) if movie else None, "text": decode_utf8(raw, name)})
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
        raise SentituneError(f"{path}: not a readable tar.gz archive ({str(exc).splitlines()[0]}); "
                             "pass aclImdb_v1.tar.gz as downloaded.") from None
    return _acl_frames(entries, str(path))


def _acl_frames(entries: dict[str, bytes], where: str) -> dict[str, pd.DataFrame]:
    frames = {split: _acl_rows(entries, split) for split in ("train", "test")}
    unsup = _acl_rows(entries, "train").pipe(lambda df: df[df.label == -1])
    frames["train"] = frames["train"][frames["train"].label >= 0].reset_index(drop=True)
    if len(unsup):
        frames["unsupervised"] = unsup.reset_index(drop=True)
    if frames["train"].empty:
        raise SentituneError(f"--data: {where} has no reviews under train/pos or train/neg; "
                             "pass an extracted aclImdb/ folder.")
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
        raise SentituneError(f"{path}: unknown format '{suffix}'; "
                             "use .csv, .tsv, .jsonl or .parquet (or an aclImdb folder/tarball).")
    if suffix == ".parquet":
        df = _read_parquet(path)
    else:
        text = decode_utf8(path.read_bytes(), str(path)).removeprefix("\ufeff")
        try:
            if suffix in {".csv", ".tsv"}:
                df = _read_delimited(text, "\t" if suffix == ".tsv" else ",", cfg.text_column)
            else:
                df = _read_json(text, lines=suffix == ".jsonl")
        except (ValueError, TypeError) as exc:
            raise SentituneError(f"{path}: cannot parse as {suffix[1:].upper()} ({str(exc).splitlines()[0]}); "
                                 "fix the file.") from None
    return df


def _read_json(text: str, lines: bool) -> pd.DataFrame:
    try:
        return pd.read_json(io.StringIO(text), lines=lines)
    except ValueError as exc:
        if not str(exc).startswith(("Value is too small", "Value is too big")):
            raise
    # pandas' parser holds 64-bit integers only (a rating column of 2**63 is still a valid file); Python's holds any
    return pd.DataFrame([json.loads(line) for line in text.split("\n") if line.strip()] if lines else json.loads(text))


def _read_delimited(text: str, sep: str, text_column: str) -> pd.DataFrame:
    """A CSV/TSV table in which only an empty text is missing (a review may read "NA" or "null"); the other columns
    take pandas' usual missing values."""
    from pandas._libs.parsers import STR_NA_VALUES

    header = pd.read_csv(io.StringIO(text), sep=sep, nrows=0).columns
    missing = {name: [""] if name == text_column else sorted(STR_NA_VALUES) for name in header}
    return pd.read_csv(io.StringIO(text), sep=sep, keep_default_na=False, na_values=missing)


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
        names = getattr(ds.features.get(cfg.label_column), "names", None)
        if names and "label_name" not in df.columns:  # a ClassLabel: its names name the integer labels
            df["label_name"] = df[cfg.label_column].map(lambda i: names[i] if 0 <= i < len(names) else None)
        if cfg.text_column in df.columns and cfg.label_column in df.columns:
            frames[split] = df
    if "train" not in frames:
        raise SentituneError(f"--data: '{dataset_id}' has no train split with columns "
                             f"{cfg.text_column}/{cfg.label_column}; pass --text-column/--label-column.")
    return frames


