"""data.stats: the data summary shows every class of two-, three- and five-class sources."""

from __future__ import annotations

import pandas as pd
import pytest
from rich.console import Console

from sentitune.data import DataConfig
from sentitune.data.stats import dataset_stats, label_columns, stats_table


def rendered(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


@pytest.mark.parametrize("k", [2, 3, 5])
def test_the_summary_has_a_column_per_class(tmp_path, k):
    rows = pd.DataFrame({"text": [f"text number {i}" for i in range(10 * k)], "label": [i % k for i in range(10 * k)]})
    rows.to_parquet(tmp_path / "train.parquet")
    rows.head(3 * k).to_parquet(tmp_path / "test.parquet")
    pd.DataFrame({"text": ["an unlabelled text"] * 4}).to_parquet(tmp_path / "unsupervised.parquet")
    stats = dataset_stats(DataConfig(data=str(tmp_path)))
    columns = label_columns(stats)
    assert len(columns) == k and list(columns) == list(range(k))
    text = rendered(stats_table(stats))
    assert all(f" {name} " in text for name in columns.values())
    assert all(stats["splits"]["train"]["labels"][c] == 10 for c in range(k))


def test_tweeteval_shows_its_neutral_class():
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / "shared" / "data" / "tweeteval"
    if not source.is_dir():
        pytest.skip("../shared/data/tweeteval is not on this machine")
    stats = dataset_stats(DataConfig(data=str(source)))
    assert len(label_columns(stats)) == 3
    assert sum(stats["splits"]["train"]["labels"].values()) == stats["splits"]["train"]["rows"]
