"""A synthetic but realistic run folder (metrics.json, predictions.parquet, log.jsonl, config.yaml, model/),
so evaluation, report and model-card tests do not depend on training a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sentitune.evaluate import classification_metrics

POSITIVE = ["a wonderful film with a moving story", "great acting and a clever script", "I loved every minute of it"]
NEGATIVE = ["a dull mess with wooden acting", "the plot makes no sense at all", "I could not wait for it to end"]
FILLER = "the director shows the city at night and the music follows the characters around"


def fake_predictions(rng: np.random.Generator, split: str, n: int, max_length: int) -> pd.DataFrame:
    """n balanced rows of one split, overconfident (margins scaled x3) so temperature scaling has work to do."""
    label = np.repeat([0, 1], n // 2)
    rating = np.where(label == 1, rng.choice([7, 8, 9, 10], n), rng.choice([1, 2, 3, 4], n))
    # borderline ratings (4 and 7) get weaker evidence, as in real reviews
    strength = np.where(np.isin(rating, [4, 7]), 0.6, 2.0)
    margin = 3.0 * ((2 * label - 1) * strength + rng.normal(0, 1.2, n))
    n_tokens = rng.lognormal(np.log(230), 0.6, n).astype(int) + 5
    texts = [" ".join([(POSITIVE if y else NEGATIVE)[i % 3]] + [FILLER] * int(k // 15))
             for i, (y, k) in enumerate(zip(label, n_tokens))]
    prob = 1 / (1 + np.exp(-margin))
    return pd.DataFrame({"split": split, "idx": np.arange(n), "text": texts, "label": label, "prob": prob,
                         "pred": (prob >= 0.5).astype(int), "margin": margin, "n_tokens": n_tokens,
                         "truncated": n_tokens > max_length, "rating": rating})


def fake_log(steps: int = 60) -> list[dict]:
    """Trainer-like events: a training record every 10 steps and an evaluation every 20."""
    events = []
    for step in range(10, steps + 1, 10):
        events.append({"step": step, "epoch": step / steps, "loss": 0.7 * np.exp(-step / 40) + 0.2,
                       "learning_rate": 1e-4 * (1 - step / steps), "grad_norm": 3.0, "examples_per_s": 12.5})
        if step % 20 == 0:
            events.append({"step": step, "epoch": step / steps, "eval_loss": 0.5 * np.exp(-step / 50) + 0.25,
                           "eval_f1": 0.7 + step / steps / 10, "eval_accuracy": 0.71 + step / steps / 10})
    return events


def make_fake_run(root: Path, name: str = "fake-run", max_length: int = 256, seed: int = 0) -> Path:
    """Write a complete run folder under root and return its path."""
    rng = np.random.default_rng(seed)
    run = Path(root) / name
    (run / "model").mkdir(parents=True)
    predictions = pd.concat([fake_predictions(rng, "validation", 200, max_length), fake_predictions(rng, "test", 400, max_length)])
    predictions.to_parquet(run / "predictions.parquet", index=False)
    config = {"name": name, "output_dir": str(root), "model": "prajjwal1/bert-tiny", "max_length": max_length,
              "truncation": "head+tail", "learning_rate": 1e-4, "epochs": 1.0, "max_steps": -1, "batch_size": 16,
              "eval_batch_size": 64, "weight_decay": 0.01, "warmup_ratio": 0.06, "scheduler": "linear",
              "precision": "auto", "seed": 42,
              "data": {"data": "/data/imdb", "train_per_class": 2500, "validation_per_class": 100, "test_per_class": 200, "seed": 42}}
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    split_metrics = {s: classification_metrics(g["label"], g["prob"]) for s, g in predictions.groupby("split")}
    metrics = {**split_metrics,
               "examples": {"test": {"source": "/data/imdb", "split": "test", "seed": 42, "size": 400, "per_class": 200, "fingerprint": "abcd1234abcd1234"}},
               "train": {"wall_time_s": 754.2, "train_examples_per_s": 6.63, "train_samples": 5000, "precision": "bf16",
                         "hardware": {"platform": "Linux-6.1-x86_64", "processor": "x86_64", "cpu_threads": 2, "torch": "2.13.0"}, "steps": 60, "best_step": 60},
               "data": {"source": "/data/imdb", "rows": {"train": 5000, "validation": 200, "test": 400}, "train_test_overlap": 3}}
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (run / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in fake_log()))
    (run / "model" / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": {"0": "negative", "1": "positive"}}))
    return run


def fake_baseline(run: Path, name: str, flip_share: float, fingerprint: str | None = None, seed: int = 1) -> dict:
    """A baseline result entry built from the run's test predictions with a share of them flipped to wrong."""
    rng = np.random.default_rng(seed)
    test = pd.read_parquet(run / "predictions.parquet").query("split == 'test'").reset_index(drop=True)
    examples = json.loads((run / "metrics.json").read_text())["examples"]["test"]
    flip = (test["pred"] == test["label"]) & (rng.random(len(test)) < flip_share)
    prob = np.where(flip, 1 - test["prob"], test["prob"])
    predictions = pd.DataFrame({"idx": test["idx"], "label": test["label"], "prob": prob, "pred": (prob >= 0.5).astype(int)})
    return {"name": name, "kind": "classical", "family": name, "metrics": classification_metrics(test["label"], prob),
            "examples": {**examples, "fingerprint": fingerprint or examples["fingerprint"]}, "examples_per_s": 5000.0,
            "model_size_mb": 1.0, "extra": {}, "predictions": predictions}


def fake_comparison(run: Path) -> dict:
    """RUN/comparison/ as `sentitune compare` writes it: a weaker baseline on the same examples, one on others."""
    from sentitune.compare import compare

    entries = [fake_baseline(run, "tfidf-logreg", 0.1), fake_baseline(run, "vader", 0.3, fingerprint="ffff")]
    return compare([run, *entries], run / "comparison", allow_different_examples=True)
