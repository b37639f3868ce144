"""Shared fixtures: a tiny random BERT (real tokenizer, 2 small layers) and small labelled data files."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the Hub is never reached from tests: fail fast, never hang
IMDB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imdb"


def tiny_bert(path: Path, num_labels: int = 2, id2label: dict | None = None) -> Path:
    """Save a randomly initialised 2-layer BERT with the default model's tokenizer to `path`."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from sentitune.models.loading import default_model

    tokenizer = AutoTokenizer.from_pretrained(default_model())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=num_labels,
                        id2label=id2label or {i: f"LABEL_{i}" for i in range(num_labels)},
                        architectures=["BertForSequenceClassification"])
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def padded_batch():
    """Three rows of 24 random token ids, the second padded after 15 tokens, the third after 5."""
    import torch

    torch.manual_seed(0)
    ids = torch.randint(1000, 5000, (3, 24))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    mask[2, 5:] = 0
    return ids, mask


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def synthetic_reviews(n_per_class: int = 60, seed: int = 0) -> pd.DataFrame:
    """Learnable toy reviews: positive ones praise, negative ones pan; 12 movies, each reviewed both ways."""
    import random

    rng = random.Random(seed)
    good = ["wonderful", "great", "brilliant", "moving", "superb", "loved"]
    bad = ["awful", "boring", "terrible", "dull", "waste", "hated"]
    filler = ["the", "plot", "actors", "film", "scene", "story", "and", "was", "really", "quite"]
    rows = []
    for label, words in ((0, bad), (1, good)):
        for i in range(n_per_class):
            text = " ".join(rng.choice(filler + words) for _ in range(rng.randint(8, 40)))
            rows.append({"text": f"{text} {rng.choice(words)}<br /><br />{rng.choice(words)}.", "label": label,
                         "rating": rng.choice([1, 2, 3, 4]) if label == 0 else rng.choice([7, 8, 9, 10]),
                         "movie": f"tt{i % 12:07d}"})
    return pd.DataFrame(rows)


@pytest.fixture
def parquet_folder(tmp_path) -> Path:
    """A folder shaped like the IMDB copy: train.parquet and test.parquet."""
    synthetic_reviews(60, seed=0).to_parquet(tmp_path / "train.parquet")
    synthetic_reviews(30, seed=1).assign(movie=lambda d: d.movie.str.replace("tt", "tx")).to_parquet(
        tmp_path / "test.parquet")
    return tmp_path
