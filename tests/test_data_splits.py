"""sentitune.data.splits: labels, cleaning, duplicates, honest validation splits, samples, bad input."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import IMDB, synthetic_reviews

from sentitune.core.errors import SentituneError
from sentitune.data import (
    DataConfig,
    clean_text,
    examples_descriptor,
    prepare_frames,
    prepare_splits,
    sampling_note,
)


def test_star_ratings_with_threshold(tmp_path):
    df = synthetic_reviews(20)[["text", "rating"]]
    df.to_csv(tmp_path / "stars.csv", index=False)
    cfg = DataConfig(data=str(tmp_path / "stars.csv"), label_column="rating", label_threshold=7, test_size=0.5)
    frames, report = prepare_frames(cfg)
    rows = pd.concat(frames.values())
    assert report["labels"]["names"] == ["negative", "positive"]
    assert (rows["label"].to_numpy() == (df.loc[rows["idx"], "rating"].to_numpy() >= 7)).all()


def test_clean_text():
    assert clean_text("A &amp; B<br /><br />C  \n D<BR>e") == "A & B C D e"


def test_duplicates_overlap_and_balance(parquet_folder):
    train = pd.read_parquet(parquet_folder / "train.parquet")
    test = pd.read_parquet(parquet_folder / "test.parquet")
    train = pd.concat([train, train.iloc[:3], test.iloc[:2]], ignore_index=True)
    train.to_parquet(parquet_folder / "train.parquet")
    frames, report = prepare_frames(DataConfig(data=str(parquet_folder), drop_test_overlap=True, train_per_class=40,
                                               validation_size=0.2))
    assert report["train_duplicates"] == 3 and report["train_test_overlap"] == 2
    assert frames["train"]["label"].value_counts().to_dict() == {0: 40, 1: 40}
    assert not frames["train"]["text"].isin(set(frames["test"]["text"])).any()


def test_validation_grouped_by_movie_and_seeded(parquet_folder):
    cfg = DataConfig(data=str(parquet_folder), validation_size=0.2, seed=3)
    frames, report = prepare_frames(cfg)
    assert not set(frames["train"]["movie"]) & set(frames["validation"]["movie"])
    assert set(frames["validation"]["label"]) == {0, 1}
    again, _ = prepare_frames(cfg)
    assert list(again["validation"]["idx"]) == list(frames["validation"]["idx"])


def test_examples_descriptor_tells_samples_apart(parquet_folder):
    a, _ = prepare_splits(DataConfig(data=str(parquet_folder), test_per_class=10, seed=1))
    b, _ = prepare_splits(DataConfig(data=str(parquet_folder), test_per_class=10, seed=2))
    cfg = DataConfig(data=str(parquet_folder), test_per_class=10)
    assert (examples_descriptor(a["test"], "test", cfg)["fingerprint"]
            != examples_descriptor(b["test"], "test", cfg)["fingerprint"])
    assert examples_descriptor(a["test"], "test", cfg)["size"] == 20


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing.csv", "does not exist"),
    (lambda p: (p / "x.xlsx").write_text("a") and p / "x.xlsx", "unknown format"),
    (lambda p: (p / "x.csv").write_text("review,label\nok,1\n") and p / "x.csv",
     r"missing column\(s\) \['text'\]; columns found: \['review', 'label'\]"),
    (lambda p: (p / "x.csv").write_text("text,label\nok,1\n ,0\n") and p / "x.csv", "empty text at row 1"),
    (lambda p: (p / "x.csv").write_text("text,label\nok,1\nbad,maybe\n") and p / "x.csv", r"mix numbers and names"),
    (lambda p: (p / "x.csv").write_text("text,label\n" + "ok,a\nfine,b\n" * 5 + "rare,c\n") and p / "x.csv",
     r"too few examples of class\(es\) \{'c': 1\}"),
    (lambda p: (p / "x.csv").write_text("text,label\n1,0\n2,1\n") and p / "x.csv", r"holds int\w* values, not text"),
    (lambda p: (p / "x.csv").write_text("text,label\n" + "ok,1\n" * 20) and p / "x.csv", "single class"),
    (lambda p: (p / "x.csv").write_bytes(b"text,label\nok,1\nd\xe9j\xe0,0\n") and p / "x.csv",
     "invalid UTF-8 at byte offset 17"),
    (lambda p: (p / "x.parquet").write_bytes(b"not parquet") and p / "x.parquet", "not a readable parquet"),
    (lambda p: (p / "x.tar.gz").write_bytes(b"junk") and p / "x.tar.gz", "not a readable tar.gz"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "neither train"),
])
def test_bad_input_is_one_clear_line(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(SentituneError, match=match) as err:
        prepare_frames(DataConfig(data=str(path)))
    assert "\n" not in str(err.value)


def test_a_class_with_fewer_rows_than_asked_gives_all_it_has(parquet_folder):
    """Small or imbalanced data: per-class sizes cap each class at what it has, and the report says which."""
    cfg = DataConfig(data=str(parquet_folder), train_per_class=10_000)
    frames, report = prepare_frames(cfg)
    assert report["per_class"]["train"] == report["available"]["train"]  # every training row of each class
    assert report["short_classes"]["train"] == report["available"]["train"]
    assert "train: all" in sampling_note(report, cfg)
    whole = DataConfig(data=cfg.data)  # no per-class sizes: nothing is short
    assert sampling_note(prepare_frames(whole)[1], whole) is None


@pytest.mark.skipif(not IMDB.is_dir(), reason="the shared IMDB copy is not beside the repo")
def test_real_imdb_copy_prepares_balanced_grouped_splits():
    frames, report = prepare_frames(DataConfig(data=str(IMDB), train_per_class=500, validation_per_class=100,
                                               test_per_class=200))
    assert report["raw_rows"] == {"train": 25_000, "test": 25_000}
    assert report["movies_in_train_and_validation"] == 0
    assert frames["test"]["label"].value_counts().to_dict() == {0: 200, 1: 200}


def test_validation_in_train_for_the_final_fit(parquet_folder):
    plain, _ = prepare_frames(DataConfig(data=str(parquet_folder), validation_size=0.2))
    final, report = prepare_frames(DataConfig(data=str(parquet_folder), validation_size=0.2, validation_in_train=True))
    assert len(final["train"]) == len(plain["train"]) + len(plain["validation"]) and report["validation_in_train"]
    assert set(final["validation"]["idx"]) <= set(final["train"]["idx"])


def test_three_classes_with_named_integers_and_an_official_validation_split(tmp_path):
    rows = synthetic_reviews(30)
    rows = pd.concat([rows, rows.assign(text="so-so " + rows.text, label=2)]).assign(
        label_name=lambda d: d.label.map({0: "negative", 1: "positive", 2: "neutral"}))
    rows["label"] = rows["label"].map({0: 0, 2: 1, 1: 2})
    rows.iloc[::4].to_parquet(tmp_path / "validation.parquet")
    rows.to_parquet(tmp_path / "train.parquet")
    rows.iloc[1::3].to_parquet(tmp_path / "test.parquet")
    frames, report = prepare_frames(DataConfig(data=str(tmp_path)))
    assert report["labels"] == {"names": ["negative", "neutral", "positive"], "ordinal": True}
    assert report["validation_from_source"] and len(frames["validation"]) == len(rows.iloc[::4])
    assert set(report["class_shares"]["train"]) == {"negative", "neutral", "positive"}


def test_stratified_train_sample_keeps_class_shares(parquet_folder):
    frames, _ = prepare_frames(DataConfig(data=str(parquet_folder), validation_size=0.2, train_examples=50))
    assert len(frames["train"]) == 50 and frames["train"]["label"].value_counts().min() >= 24


@pytest.mark.skipif(not (IMDB.parent / "sst5").is_dir(), reason="the shared SST-5 copy is not beside the repo")
def test_real_sst5_is_five_ordered_classes():
    frames, report = prepare_frames(DataConfig(data=str(IMDB.parent / "sst5")))
    assert report["labels"]["names"] == ["very negative", "negative", "neutral", "positive", "very positive"]
    assert report["labels"]["ordinal"] and report["rows"]["test"] == 2210
