"""Synthetic but realistic run folders (config.yaml, metrics.json, predictions.parquet, log.jsonl, model/config.json),
so evaluation, report and model-card tests do not depend on training a model.

Three tasks: `binary` (IMDB-like reviews with star ratings, the older hardware record), `tweets` (three nominal
classes whose train and test shares differ, from a TweetEval copy) and `stars` (a five-class ordinal scale).
Predictions are in today's format (`pred`, `confidence`, `prob_i`, `logit_i`); metrics come from
`sentitune.core.metrics.classification_metrics`, so they are what training would record.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sentitune.core.labels import LabelScheme
from sentitune.core.metrics import classification_metrics, mcnemar, paired_bootstrap, softmax
from sentitune.run.folder import RunFolder, prediction_columns, probabilities

FILLER = "the director shows the city at night and the music follows the characters around"
TINY_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
                            "RU5ErkJggg==")
OLD_HARDWARE = {"platform": "Linux-6.1-x86_64", "processor": "x86_64", "cpu_threads": 2, "torch": "2.13.0"}
NEW_HARDWARE = {"device": "cpu", "precision": "bf16", "threads": 2, "attention": "auto",
                "cpu": "AMD EPYC 7B13, 2 threads, AVX2", "cpu_flags": {"avx2": True}, "platform": "Linux-6.1-x86_64",
                "torch": "2.13.0"}


@dataclass(frozen=True)
class Task:
    names: tuple[str, ...]
    ordinal: bool
    source: str
    phrases: tuple[str, ...]  # one opening phrase per class
    test_weights: tuple[float, ...]  # class shares of the test split (train is balanced)
    ratings: bool = False
    hardware: dict | None = None


TASKS = {
    "binary": Task(("negative", "positive"), False, "/data/imdb", ("a dull mess with wooden acting",
                                                                    "a wonderful film with a moving story"),
                   (0.5, 0.5), ratings=True, hardware=OLD_HARDWARE),
    "tweets": Task(("negative", "neutral", "positive"), False, "/data/tweeteval",
                   ("worst service ever, never again", "the meeting is at noon today", "so happy with the new phone"),
                   (0.45, 0.35, 0.2), hardware=NEW_HARDWARE),
    "stars": Task(("very negative", "negative", "neutral", "positive", "very positive"), True, "/data/sentences.csv",
                  ("an utter disaster", "rather disappointing", "it is a film", "quite enjoyable", "a masterpiece"),
                  (0.2, 0.2, 0.2, 0.2, 0.2), hardware=NEW_HARDWARE),
}


def class_labels(n: int, weights) -> np.ndarray:
    """n class ids in exact proportion to `weights`, sorted (the last class takes the rounding)."""
    counts = np.floor(n * np.asarray(weights) / np.sum(weights)).astype(int)
    counts[-1] += n - counts.sum()
    return np.repeat(np.arange(len(counts)), counts)


def fake_logits(rng: np.random.Generator, label: np.ndarray, k: int, strength: np.ndarray) -> np.ndarray:
    """Logits that favour the true class and, on an ordered scale, its neighbours; scaled x3 so the model is
    over-confident and temperature scaling has work to do."""
    distance = np.abs(np.arange(k)[None, :] - label[:, None])
    return 3.0 * (-strength[:, None] * distance + rng.normal(0, 1.0, (len(label), k)))


def fake_predictions(rng: np.random.Generator, task: Task, split: str, n: int, max_length: int,
                     weights=None, text_prefix: str = "") -> pd.DataFrame:
    """n rows of one split in the predictions-table format every later stage reads."""
    k = len(task.names)
    label = class_labels(n, weights or [1.0] * k)
    rating = np.full(n, -1)
    strength = np.full(n, 1.2)
    if task.ratings:  # IMDB's 1-4 / 7-10 stars; borderline 4s and 7s get weaker evidence, as in real reviews
        rating = np.where(label == 1, rng.choice([7, 8, 9, 10], n), rng.choice([1, 2, 3, 4], n))
        strength = np.where(np.isin(rating, [4, 7]), 0.4, 1.6)
    logit = fake_logits(rng, label, k, strength)
    n_tokens = rng.lognormal(np.log(230), 0.6, n).astype(int) + 5
    texts = [f"{text_prefix}{task.phrases[y]} " + " ".join([FILLER] * int(t // 15)) for y, t in zip(label, n_tokens)]
    return pd.DataFrame({"split": split, "idx": np.arange(n), "text": texts, "label": label,
                         **prediction_columns(softmax(logit), logit), "n_tokens": n_tokens,
                         "truncated": n_tokens > max_length, "rating": rating})


def fake_log(selection: str, steps: int = 60) -> list[dict]:
    """Trainer-like events: a training record every 10 steps and an evaluation every 20."""
    events = []
    for step in range(10, steps + 1, 10):
        events.append({"step": step, "epoch": step / steps, "loss": 0.7 * np.exp(-step / 40) + 0.2,
                       "learning_rate": 1e-4 * (1 - step / steps), "grad_norm": 3.0, "examples_per_s": 12.5})
        if step % 20 == 0:
            events.append({"step": step, "epoch": step / steps, "eval_loss": 0.5 * np.exp(-step / 50) + 0.25,
                           f"eval_{selection}": 0.7 + step / steps / 10, "eval_accuracy": 0.71 + step / steps / 10})
    return events


def split_metrics(frame: pd.DataFrame, labels: LabelScheme) -> dict:
    return classification_metrics(frame["label"].to_numpy(int), probabilities(frame), labels.names, labels.ordinal)


def shares(frame: pd.DataFrame, labels: LabelScheme) -> dict[str, float]:
    counts = np.bincount(frame["label"].to_numpy(int), minlength=labels.n)
    return {name: round(float(c / counts.sum()), 4) for name, c in zip(labels.names, counts)}


def fake_metrics(predictions: pd.DataFrame, task: Task, labels: LabelScheme, selection: str) -> dict:
    """metrics.json as training writes it: labels, validation/test metrics, examples, training and data facts."""
    test = predictions.query("split == 'test'")
    train_like = predictions.query("split == 'validation'")  # train is balanced like validation in these fakes
    return {
        "labels": labels.to_dict(),
        **{s: split_metrics(g, labels) for s, g in predictions.groupby("split")},
        "examples": {"test": {"source": task.source, "split": "test", "seed": 42, "size": len(test), "per_class": None,
                              "fingerprint": "abcd1234abcd1234"}},
        "train": {"wall_time_s": 754.2, "train_examples_per_s": 6.63, "train_samples": 5000, "precision": "bf16",
                  "hardware": task.hardware, "steps": 60, "best_step": 60, "selection_metric": selection},
        "data": {"source": task.source, "labels": labels.to_dict(), "rows": {"train": 5000, "validation": 200,
                                                                             "test": len(test)},
                 "train_test_overlap": 3, "max_length": {"value": 256, "source": "99th percentile of training token "
                                                                                 "lengths (251), rounded up to 8"},
                 "class_shares": {"train": shares(train_like, labels), "test": shares(test, labels)}},
    }


def fake_config(name: str, root: Path, task: Task, max_length: int) -> dict:
    return {"name": name, "output_dir": str(root), "model": "prajjwal1/bert-tiny", "max_length": max_length,
            "truncation": "head+tail", "learning_rate": 1e-4, "epochs": 1.0, "max_steps": -1, "batch_size": 16,
            "eval_batch_size": 64, "weight_decay": 0.01, "warmup_ratio": 0.06, "scheduler": "linear",
            "precision": "auto", "seed": 42,
            "data": {"data": task.source, "train_per_class": 2500, "validation_per_class": 100, "seed": 42}}


def make_fake_run(root: Path, name: str = "fake-run", max_length: int = 256, seed: int = 0, kind: str = "binary",
                  names: tuple[str, ...] | None = None, title: str | None = None, text_prefix: str = "") -> Path:
    """Write a complete run folder `root/name` of the task `kind` and return its path.

    `names` renames the classes, `title` is the run's configured name (default `name`) and `text_prefix` starts
    every text: the report's escaping tests put hostile markup there."""
    task = dataclasses.replace(TASKS[kind], names=tuple(names or TASKS[kind].names))
    labels = LabelScheme(task.names, task.ordinal, task.names)
    rng = np.random.default_rng(seed)
    run = RunFolder(Path(root) / name)
    run.model_dir.mkdir(parents=True)
    predictions = pd.concat([
        fake_predictions(rng, task, "validation", 200, max_length, text_prefix=text_prefix),
        fake_predictions(rng, task, "test", 400, max_length, task.test_weights, text_prefix)], ignore_index=True)
    selection = "f1" if labels.binary else "f1_macro"
    run.write_predictions(predictions)
    config = fake_config(title or name, Path(root), task, max_length)
    run.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    run.write_metrics(fake_metrics(predictions, task, labels, selection))
    run.log_path.write_text("".join(json.dumps(e) + "\n" for e in fake_log(selection)))
    (run.model_dir / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": labels.id2label}))
    return run.path


# ---------------------------------------------------------------- baselines and a comparison table


def fake_baseline(run: Path, name: str, flip_share: float, seed: int = 1) -> pd.DataFrame:
    """A baseline's test predictions: the run's, with a share of its right answers turned into the next class."""
    rng = np.random.default_rng(seed)
    test = RunFolder(run).predictions().query("split == 'test'").reset_index(drop=True)
    k = len(RunFolder(run).labels().names)
    label, pred = test["label"].to_numpy(int), test["pred"].to_numpy(int)
    pred = np.where((pred == label) & (rng.random(len(test)) < flip_share), (label + 1) % k, pred)
    probs = np.full((len(test), k), 0.3 / (k - 1))
    probs[np.arange(len(test)), pred] = 0.7
    return test[["idx", "label"]].assign(**prediction_columns(probs))


ROW_KEYS = ("n", "accuracy", "accuracy_ci95", "f1_macro", "f1_macro_ci95", "recall_macro", "recall_macro_ci95", "f1",
            "roc_auc", "mae", "qwk")


def comparison_row(name: str, kind: str, frame: pd.DataFrame, labels: LabelScheme, examples: dict,
                   reference: pd.DataFrame | None) -> dict:
    """One row of a comparison table in the shape `sentitune compare` writes, paired with `reference`."""
    metrics = split_metrics(frame, labels)
    row = {"name": name, "kind": kind, **{k: metrics.get(k) for k in ROW_KEYS}, "examples": examples,
           "examples_per_s": 500.0, "mcnemar_vs_best_baseline": None, "bootstrap_f1_macro_vs_best_baseline": None}
    if reference is not None:
        y, pred, base = frame["label"].to_numpy(int), frame["pred"].to_numpy(int), reference["pred"].to_numpy(int)
        row["mcnemar_vs_best_baseline"] = mcnemar(pred == y, base == y)
        row["bootstrap_f1_macro_vs_best_baseline"] = paired_bootstrap(y, pred, base, labels.n, count=200)
    return row


def comparison_table(run: Path) -> dict:
    """The run, a weaker baseline on the same examples (the best baseline) and one scored on other examples."""
    folder = RunFolder(run)
    labels, examples = folder.labels(), folder.metrics()["examples"]["test"]
    test = folder.predictions().query("split == 'test'").reset_index(drop=True)
    best, other = fake_baseline(run, "tfidf-logreg", 0.1), fake_baseline(run, "vader", 0.3, seed=2)
    rows = [comparison_row(folder.name, "fine-tuned", test, labels, examples, best),
            comparison_row("tfidf-logreg", "classical", best, labels, examples, None),
            comparison_row("vader", "lexicon", other, labels, {**examples, "fingerprint": "ffff"}, best)]
    return {"best_baseline": "tfidf-logreg", "same_examples": False, "examples": None, "rows": rows,
            "headline": f"{folder.name} beats the best baseline tfidf-logreg."}


def fake_comparison(run: Path) -> dict:
    """RUN/comparison/ as `sentitune compare` writes it (with a placeholder chart)."""
    table = comparison_table(run)
    RunFolder(run).write_comparison(table, "# Comparison\n", lambda path: Path(path).write_bytes(TINY_PNG))
    return table
