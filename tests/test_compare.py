"""The comparison table: paired McNemar by idx, refusal on different examples, run and baseline folders."""

import json

import numpy as np
import pandas as pd
import pytest

from sentitune.baselines import save_baseline
from sentitune.compare import compare, comparison, load_entries
from sentitune.errors import SentituneError
from sentitune.evaluate import classification_metrics

N = 200
LABELS = np.arange(N) % 2


def examples(fingerprint: str = "abc123", size: int = N) -> dict:
    return {"source": "toy", "split": "test", "seed": 42, "size": size, "per_class": size // 2, "fingerprint": fingerprint}


def entry(name: str, kind: str, accuracy: float, seed: int, idx: np.ndarray | None = None, fingerprint: str = "abc123") -> dict:
    """A result entry whose predictions are right on about `accuracy` of the examples (shuffled order)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(N) if idx is None else idx
    labels = LABELS[: len(idx)]
    right = rng.random(len(idx)) < accuracy
    prob = np.where(right == (labels == 1), 0.5 + 0.5 * rng.random(len(idx)), 0.5 * rng.random(len(idx)))
    order = rng.permutation(len(idx))  # predictions need not be stored in the same order
    predictions = pd.DataFrame({"idx": idx, "label": labels, "prob": prob, "pred": (prob >= 0.5).astype(int)}).iloc[order]
    return {"name": name, "kind": kind, "family": kind, "metrics": classification_metrics(labels, prob),
            "examples": examples(fingerprint, len(idx)), "examples_per_s": 100.0, "model_size_mb": 1.0, "extra": {},
            "predictions": predictions.reset_index(drop=True)}


def run_folder(tmp_path, tuned: dict):
    """A run folder as sentitune.train writes it, from an in-memory entry."""
    run = tmp_path / "runs" / tuned["name"]
    (run / "model").mkdir(parents=True)
    (run / "model" / "model.safetensors").write_bytes(b"\0" * 2_000_000)
    metrics = {"validation": tuned["metrics"], "test": tuned["metrics"], "examples": {"test": tuned["examples"]},
               "train": {"wall_time_s": 1.0}, "inference": {"examples_per_s": 55.0}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    test = tuned["predictions"].assign(split="test")
    validation = test.assign(split="validation", idx=test["idx"] + 10_000)
    pd.concat([validation, test]).assign(text="x", margin=0.0).to_parquet(run / "predictions.parquet", index=False)
    return run


def test_rows_pair_with_best_baseline():
    entries = [entry("tfidf-lr", "classical", 0.85, 1), entry("vader", "lexicon", 0.70, 2), entry("distilbert", "fine-tuned", 0.95, 3)]
    table = comparison(entries)
    assert table["best_baseline"] == "tfidf-lr" and table["same_examples"]
    assert [r["name"] for r in table["rows"]] == ["distilbert", "tfidf-lr", "vader"]
    tuned, best, vader = table["rows"]
    assert best["mcnemar_vs_best_baseline"] is None and best["delta_accuracy_vs_best_baseline"] is None
    assert tuned["delta_accuracy_vs_best_baseline"] == pytest.approx(tuned["accuracy"] - best["accuracy"])
    assert tuned["mcnemar_vs_best_baseline"]["n"] == N and tuned["mcnemar_vs_best_baseline"]["p_value"] < 0.05
    assert vader["delta_accuracy_vs_best_baseline"] < 0
    assert "trails" in comparison([entries[0], entry("tuned", "fine-tuned", 0.6, 4)])["headline"]
    assert "distilbert beats the best baseline tfidf-lr" in table["headline"]


def test_compare_writes_markdown_json_png(tmp_path):
    entries = [entry("tfidf-lr", "classical", 0.85, 1), entry("distilbert", "fine-tuned", 0.92, 3)]
    table = compare(entries, tmp_path / "cmp")
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["comparison.json", "comparison.md", "comparison.png"]
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["rows"] == json.loads(json.dumps(table["rows"]))
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| distilbert | fine-tuned | 200 |" in md and "(reference)" in md and "1000 per class" not in md
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_refuses_different_examples_unless_allowed():
    full = entry("tfidf-lr", "classical", 0.85, 1)
    subset = entry("distilbert", "fine-tuned", 0.9, 3, idx=np.arange(0, N, 2), fingerprint="other")
    with pytest.raises(SentituneError, match="different test examples.*allow-different-examples"):
        comparison([full, subset])
    table = comparison([full, subset], allow_different_examples=True)
    assert not table["same_examples"] and table["examples"] is None
    assert table["rows"][0]["mcnemar_vs_best_baseline"]["n"] == N // 2


def test_same_fingerprint_but_different_predictions_is_an_error():
    short = entry("distilbert", "fine-tuned", 0.9, 3, idx=np.arange(N - 1))
    short["examples"] = examples()
    with pytest.raises(SentituneError, match="different idx"):
        comparison([entry("tfidf-lr", "classical", 0.85, 1), short])


def test_loads_run_folders_and_baseline_folders(tmp_path):
    tuned = entry("distilbert", "fine-tuned", 0.93, 3)
    run = run_folder(tmp_path, tuned)
    for baseline in (entry("tfidf-lr", "classical", 0.85, 1), entry("vader", "lexicon", 0.7, 2)):
        save_baseline(baseline, tmp_path / "baselines")
    entries = load_entries([run, tmp_path / "baselines"])
    assert [e["name"] for e in entries] == ["distilbert", "tfidf-lr", "vader"]
    loaded = entries[0]
    assert loaded["kind"] == "fine-tuned" and loaded["examples_per_s"] == 55.0 and loaded["model_size_mb"] == 2.0
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["inference"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "eval_samples_per_second": 60.5}\n')
    assert load_entries([run])[0]["examples_per_s"] == 60.5
    assert len(loaded["predictions"]) == N and set(loaded["predictions"].columns) == {"idx", "label", "prob", "pred"}
    table = compare([run, tmp_path / "baselines"], tmp_path / "cmp")
    assert table["rows"][0]["name"] == "distilbert"
    assert table["rows"][0]["mcnemar_vs_best_baseline"]["accuracy_a"] == pytest.approx(tuned["metrics"]["accuracy"])


def test_bad_paths_and_duplicate_names(tmp_path):
    with pytest.raises(SentituneError, match="neither a run folder"):
        load_entries([tmp_path])
    with pytest.raises(SentituneError, match="nothing to compare"):
        comparison([])
    table = comparison([entry("vader", "lexicon", 0.7, 1), entry("vader", "lexicon", 0.6, 2)])
    assert {r["name"] for r in table["rows"]} == {"vader", "vader#2"}
