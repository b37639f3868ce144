"""sentitune.data.sources: every --data form (parquet folder, aclImdb folder and tarball, table files, the Hub)."""

from __future__ import annotations

import tarfile

import pytest
from conftest import synthetic_reviews

from sentitune.core.errors import SentituneError
from sentitune.data import (
    DataConfig,
    prepare_frames,
    read_source,
)


def write_acl(root, n: int = 6):
    """A miniature aclImdb/ tree: <split>/<pos|neg>/<id>_<rating>.txt and urls_<pos|neg>.txt."""
    for split in ("train", "test"):
        for polarity, ratings in (("pos", [7, 8, 9, 10]), ("neg", [1, 2, 3, 4])):
            folder = root / split / polarity
            folder.mkdir(parents=True)
            word = "great" if polarity == "pos" else "awful"
            for i in range(n):
                (folder / f"{i}_{ratings[i % 4]}.txt").write_text(f"Review {i} of a {word} film.<br /><br />"
                                                                  f"Really {word} &amp; more.")
            base = (1 if split == "train" else 2) * 1_000_000 + (500 if polarity == "pos" else 0)
            urls = [f"http://www.imdb.com/title/tt{base + i // 2:07d}/usercomments" for i in range(n)]
            (root / split / f"urls_{polarity}.txt").write_text("\n".join(urls) + "\n")
    return root


def test_parquet_folder(parquet_folder):
    frames = read_source(str(parquet_folder))
    assert set(frames) == {"train", "test"} and len(frames["train"]) == 120
    assert set(frames["train"]["label"]) == {0, 1}


def test_acl_folder_reads_ids_ratings_and_movies(tmp_path):
    frames = read_source(str(write_acl(tmp_path / "aclImdb")))
    train = frames["train"]
    assert len(train) == 12 and len(frames["test"]) == 12
    first_pos = train[(train.label == 1) & (train.id == 0)].iloc[0]
    assert first_pos.rating == 7 and first_pos.movie == "tt1000500"
    assert read_source(str(tmp_path))["train"].shape == train.shape  # the parent of aclImdb/ works too


def test_acl_tarball(tmp_path):
    write_acl(tmp_path / "aclImdb")
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "aclImdb", arcname="aclImdb")
    frames = read_source(str(archive))
    assert len(frames["train"]) == 12 and frames["test"]["movie"].notna().all()


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_table_files_with_custom_columns_and_string_labels(tmp_path, suffix):
    df = synthetic_reviews(20).rename(columns={"text": "review", "label": "sentiment"})
    df["sentiment"] = df["sentiment"].map({0: "negative", 1: "Pos"})
    path = tmp_path / f"reviews{suffix}"
    {".csv": lambda: df.to_csv(path, index=False), ".tsv": lambda: df.to_csv(path, sep="\t", index=False),
     ".jsonl": lambda: df.to_json(path, orient="records", lines=True),
     ".parquet": lambda: df.to_parquet(path)}[suffix]()
    cfg = DataConfig(data=str(path), text_column="review", label_column="sentiment", validation_size=0.2)
    frames, report = prepare_frames(cfg)
    assert report["test_carved_from_train"] == 0.2
    assert sum(len(f) for f in frames.values()) == 40
    assert set(frames["test"]["label"]) == {0, 1}


def test_hub_unreachable_names_local_forms(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(SentituneError, match="offline, pass a parquet folder .*SENTITUNE_DATA"):
        read_source("stanfordnlp/imdb")


