"""`sentitune data stats`: what is in a dataset before anyone trains on it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import DataConfig
from .sources import read_source
from .splits import clean_text


def token_lengths(texts: list[str], tokenizer) -> np.ndarray:
    """Tokens per text, special tokens included, without truncation."""
    ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))


def dataset_stats(cfg: DataConfig, tokenizer=None, frames: dict[str, pd.DataFrame] | None = None,
                  sample: int | None = None) -> dict:
    """Counts per split and label, ratings, duplicates and (given a tokenizer) token length percentiles, these
    from a seeded random `sample` of texts per split when given (the main job: tokenizing 100k reviews costs
    minutes on a 2-core CPU; 5,000 put the 99th percentile within a few tokens)."""
    frames = frames or read_source(cfg.data, cfg)
    texts = {k: (v["text"].map(clean_text) if cfg.clean else v["text"]) for k, v in frames.items()}
    stats: dict = {"source": cfg.data, "splits": {}}
    for split, df in frames.items():
        entry = {"rows": len(df),
                 "labels": {_label_key(k): int(v) for k, v in df["label"].value_counts().sort_index().items()},
                 "duplicate_texts": int(texts[split].duplicated().sum())}
        if "rating" in df.columns:
            entry["ratings"] = {int(k): int(v) for k, v in df["rating"].value_counts().sort_index().items()}
        stats["splits"][split] = entry
    if "test" in texts:
        stats["train_texts_in_test"] = int(texts["train"].isin(set(texts["test"])).sum())
    if tokenizer is not None:
        stats["tokenizer"] = tokenizer.name_or_path
        stats["token_sample"] = sample
        stats["tokens"] = {split: _length_summary(token_lengths(_sampled(t, sample, cfg.seed), tokenizer))
                           for split, t in texts.items() if split != "unsupervised"}
    return stats


def _sampled(texts: pd.Series, n: int | None, seed: int) -> list[str]:
    return list(texts if n is None or n >= len(texts) else texts.sample(n=n, random_state=seed))


def _label_key(value):
    """Integer labels as ints (JSON keys "0", "1"), any other label as its text."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def _length_summary(lengths: np.ndarray) -> dict:
    pct = np.percentile(lengths, [50, 90, 95, 99])
    return {"mean": float(lengths.mean()), "p50": float(pct[0]), "p90": float(pct[1]), "p95": float(pct[2]),
            "p99": float(pct[3]), "max": int(lengths.max()), "share_over_256": float((lengths > 256).mean()),
            "share_over_512": float((lengths > 512).mean()), "lengths": lengths}


def stats_for_json(stats: dict) -> dict:
    """`dataset_stats` without the raw length arrays."""
    out = dict(stats)
    if "tokens" in out:
        out["tokens"] = {k: {m: v for m, v in s.items() if m != "lengths"} for k, s in out["tokens"].items()}
    return out


def stats_table(stats: dict):
    """A rich table of `dataset_stats`: one row per split."""
    from rich import box
    from rich.table import Table

    title = (f"{stats['source']}: rows, labels, duplicate texts, token length percentiles and share over 256/512 tokens"
             + (f" (train texts also in test: {stats['train_texts_in_test']})"
                if "train_texts_in_test" in stats else ""))
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("split")
    labels = label_columns(stats)
    for column in ("rows", *labels.values(), "dup", "p50", "p90", "p99", ">256", ">512"):
        table.add_column(column, justify="right")
    for split, entry in stats["splits"].items():
        tok = stats.get("tokens", {}).get(split)
        cells = [f"{tok['p50']:.0f}", f"{tok['p90']:.0f}", f"{tok['p99']:.0f}", f"{tok['share_over_256']:.1%}",
                 f"{tok['share_over_512']:.1%}"] if tok else [""] * 5
        table.add_row(split, f"{entry['rows']:,}", *(f"{entry['labels'].get(k, 0):,}" for k in labels),
                      str(entry["duplicate_texts"]), *cells)
    return table


def label_columns(stats: dict) -> dict:
    """{label value: column header} for every label of the labelled splits, in order (0/1 read as neg/pos); an
    unlabelled split's placeholder label is no class."""
    values = sorted({k for split, entry in stats["splits"].items() if split != "unsupervised" for k in entry["labels"]},
                    key=lambda v: (str(type(v)), v))
    return {0: "neg", 1: "pos"} if values == [0, 1] else {v: str(v) for v in values}
