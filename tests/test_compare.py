"""The comparison table: best baseline by accuracy (2 classes) or macro-F1 (more), McNemar and paired bootstrap by
idx, refusals on different examples or classes, run and baseline folders (today's and first-format ones)."""

import json

import numpy as np
import pandas as pd
import pytest

from sentitune.core.errors import SentituneError
from sentitune.core.labels import LabelScheme
from sentitune.core.metrics import classification_metrics
from sentitune.evaluation.compare import FINE_TUNED, best_baseline, compare, comparison, fmt_p, load_entries, markdown
from sentitune.run.folder import RunFolder, prediction_columns, write_baseline

N = 200
SCHEMES = {2: LabelScheme(("negative", "positive")), 3: LabelScheme(("negative", "neutral", "positive"), True),
           5: LabelScheme(("1 star", "2 stars", "3 stars", "4 stars", "5 stars"), True)}


def examples(fingerprint: str = "abc123", size: int = N) -> dict:
    return {"source": "toy", "split": "test", "seed": 42, "size": size, "per_class": size // 2,
            "fingerprint": fingerprint}


def entry(name: str, kind: str, accuracy: float, seed: int, k: int = 2, idx: np.ndarray | None = None,
          fingerprint: str = "abc123", labels: np.ndarray | None = None, constant: int | None = None) -> dict:
    """A result entry of k classes right on about `accuracy` of the examples (or always predicting `constant`),
    its predictions stored in shuffled order."""
    rng = np.random.default_rng(seed)
    idx = np.arange(N) if idx is None else idx
    y = (np.arange(N) % k if labels is None else labels)[idx]
    right = rng.random(len(idx)) < accuracy
    pred = np.where(right, y, (y + 1 + rng.integers(0, k - 1, len(idx))) % k)
    pred = pred if constant is None else np.full(len(idx), constant)
    probs = 0.4 * rng.dirichlet(np.ones(k), len(idx))
    probs[np.arange(len(idx)), pred] += 0.6
    scheme = SCHEMES[k]
    order = rng.permutation(len(idx))  # predictions need not be stored in the same order
    predictions = pd.DataFrame({"idx": idx, "label": y, **prediction_columns(probs)}).iloc[order]
    return {"name": name, "kind": kind, "family": kind, "labels": scheme.to_dict(),
            "metrics": classification_metrics(y, probs, scheme.names, scheme.ordinal),
            "examples": examples(fingerprint, len(idx)), "examples_per_s": 100.0, "model_size_mb": 1.0, "extra": {},
            "predictions": predictions.reset_index(drop=True)}


def run_folder(tmp_path, tuned: dict) -> RunFolder:
    """A run folder as sentitune.training.train writes it, from an in-memory entry."""
    run = RunFolder(tmp_path / "runs" / tuned["name"])
    run.model_dir.mkdir(parents=True)
    (run.model_dir / "model.safetensors").write_bytes(b"\0" * 2_000_000)
    run.write_metrics({"labels": tuned["labels"], "validation": tuned["metrics"], "test": tuned["metrics"],
                       "examples": {"test": tuned["examples"]}, "train": {"wall_time_s": 1.0},
                       "inference": {"examples_per_s": 55.0}})
    test = tuned["predictions"].assign(split="test")
    validation = test.assign(split="validation", idx=test["idx"] + 10_000)
    run.write_predictions(pd.concat([validation, test]).assign(text="x"))
    return run


def test_two_classes_pair_with_the_most_accurate_baseline():
    entries = [entry("tfidf-lr", "classical", 0.85, 1), entry("vader", "lexicon", 0.70, 2),
               entry("distilbert", FINE_TUNED, 0.95, 3)]
    table = comparison(entries)
    assert table["best_baseline"] == "tfidf-lr" and table["same_examples"] and table["ranked_by"] == "accuracy"
    assert table["labels"] == SCHEMES[2].to_dict()
    assert [r["name"] for r in table["rows"]] == ["distilbert", "tfidf-lr", "vader"]
    tuned, best, vader = table["rows"]
    assert best["mcnemar_vs_best_baseline"] is None and best["bootstrap_f1_macro_vs_best_baseline"] is None
    assert tuned["delta_accuracy_vs_best_baseline"] == pytest.approx(tuned["accuracy"] - best["accuracy"])
    assert tuned["mcnemar_vs_best_baseline"]["n"] == N and tuned["mcnemar_vs_best_baseline"]["p_value"] < 0.05
    bootstrap = tuned["bootstrap_f1_macro_vs_best_baseline"]
    assert bootstrap["delta"] == pytest.approx(tuned["f1_macro"] - best["f1_macro"]) and bootstrap["p_value"] < 0.05
    assert bootstrap["ci95"][0] > 0 and bootstrap["metric"] == "f1_macro"
    assert vader["delta_accuracy_vs_best_baseline"] < 0
    assert {"f1", "precision", "recall", "roc_auc", "f1_macro_ci95"} <= set(tuned) and "qwk" not in tuned
    test = tuned["mcnemar_vs_best_baseline"]
    assert table["headline"] == (
        f"distilbert beats the best baseline tfidf-lr by {100 * tuned['delta_accuracy_vs_best_baseline']:.2f} accuracy "
        f"points (McNemar exact p: {fmt_p(test['p_value'])}, significant at 5%, n = {N}).")
    assert "trails" in comparison([entries[0], entry("tuned", FINE_TUNED, 0.6, 4)])["headline"]


def test_more_classes_rank_baselines_by_macro_f1_not_accuracy():
    labels = np.where(np.arange(N) % 10 < 7, 0, np.arange(N) % 3)  # about 80% class 0
    majority = entry("majority", "trivial", 0.0, 1, k=3, labels=labels, constant=0)
    tfidf = entry("tfidf-lr", "classical", 0.7, 2, k=3, labels=labels)
    tuned = entry("tuned", FINE_TUNED, 0.9, 3, k=3, labels=labels)
    assert majority["metrics"]["accuracy"] > tfidf["metrics"]["accuracy"]
    assert majority["metrics"]["f1_macro"] < tfidf["metrics"]["f1_macro"]
    table = comparison([majority, tfidf, tuned])
    assert table["ranked_by"] == "f1_macro" and table["best_baseline"] == "tfidf-lr"
    assert best_baseline([majority, tfidf, tuned])["name"] == "tfidf-lr"
    assert best_baseline([majority, tfidf], "accuracy")["name"] == "majority"
    assert [r["name"] for r in table["rows"]] == ["tuned", "tfidf-lr", "majority"]
    row = table["rows"][0]
    assert not {"f1", "precision", "recall", "roc_auc"} & set(row) and {"mae", "qwk", "f1_weighted"} <= set(row)
    bootstrap = row["bootstrap_f1_macro_vs_best_baseline"]
    assert bootstrap["delta"] == pytest.approx(row["f1_macro"] - table["rows"][1]["f1_macro"])
    assert bootstrap["p_value"] < 0.05
    assert table["rows"][2]["delta_accuracy_vs_best_baseline"] > 0  # the majority class wins on accuracy only
    assert table["headline"].startswith("tuned beats the best baseline tfidf-lr (ranked by macro-F1) by ")
    assert "paired bootstrap p: " in table["headline"] and "McNemar exact p: " in table["headline"]
    md = markdown(table)
    assert "Best baseline (by macro-F1): tfidf-lr." in md and "| macro recall | weighted F1 | MAE | QWK |" in md
    assert "ROC-AUC" not in md and "| majority | trivial | 200 |" in md


def test_five_ordinal_classes_show_mae_and_qwk():
    entries = [entry("star", "zero-shot", 0.5, 1, k=5), entry("tuned", FINE_TUNED, 0.8, 2, k=5)]
    table = comparison(entries)
    assert table["labels"]["names"][0] == "1 star" and table["labels"]["ordinal"]
    tuned, star = table["rows"]
    assert tuned["qwk"] is not None and tuned["mae"] < star["mae"]
    assert "| QWK |" in markdown(table) and tuned["bootstrap_f1_macro_vs_best_baseline"]["resamples"] == 1000


def test_refuses_different_label_schemes():
    with pytest.raises(SentituneError, match="different classes"):
        comparison([entry("tfidf-lr", "classical", 0.85, 1), entry("tuned", FINE_TUNED, 0.9, 2, k=3)])
    renamed = entry("tuned", FINE_TUNED, 0.9, 2, k=3)
    renamed["labels"] = {"names": ["bad", "meh", "good"], "ordinal": True}
    with pytest.raises(SentituneError, match=r"tuned: \['bad', 'meh', 'good'\]"):
        comparison([entry("tfidf-lr", "classical", 0.85, 1, k=3), renamed])


def test_compare_writes_markdown_json_png(tmp_path):
    entries = [entry("tfidf-lr", "classical", 0.85, 1), entry("distilbert", FINE_TUNED, 0.92, 3)]
    table = compare(entries, tmp_path / "cmp")
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["comparison.json", "comparison.md",
                                                                     "comparison.png"]
    saved = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(table["rows"])) and saved["ranked_by"] == "accuracy"
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| distilbert | fine-tuned | 200 |" in md and "(reference)" in md and "1000 per class" not in md
    assert "| F1 | precision | recall | ROC-AUC | macro-F1 |" in md and "Best baseline: tfidf-lr." in md
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    compare([entry("star", "zero-shot", 0.5, 1, k=5), entry("tuned", FINE_TUNED, 0.8, 2, k=5)], tmp_path / "cmp5")
    assert (tmp_path / "cmp5" / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_refuses_different_examples_unless_allowed():
    full = entry("tfidf-lr", "classical", 0.85, 1)
    subset = entry("distilbert", FINE_TUNED, 0.9, 3, idx=np.arange(0, N, 2), fingerprint="other")
    with pytest.raises(SentituneError, match="different test examples.*allow-different-examples"):
        comparison([full, subset])
    table = comparison([full, subset], allow_different_examples=True)
    assert not table["same_examples"] and table["examples"] is None
    assert table["rows"][0]["mcnemar_vs_best_baseline"]["n"] == N // 2
    assert "DIFFERENT examples" in markdown(table)


def test_same_fingerprint_but_different_predictions_is_an_error():
    short = entry("distilbert", FINE_TUNED, 0.9, 3, idx=np.arange(N - 1))
    short["examples"] = examples()
    with pytest.raises(SentituneError, match="different idx"):
        comparison([entry("tfidf-lr", "classical", 0.85, 1), short])


def test_loads_run_folders_and_baseline_folders(tmp_path):
    tuned = entry("distilbert", FINE_TUNED, 0.93, 3, k=3)
    run = run_folder(tmp_path, tuned)
    for baseline in (entry("tfidf-lr", "classical", 0.85, 1, k=3), entry("majority", "trivial", 0.34, 2, k=3)):
        write_baseline(baseline, tmp_path / "baselines")
    entries = load_entries([run.path, tmp_path / "baselines"])
    assert [e["name"] for e in entries] == ["distilbert", "majority", "tfidf-lr"]
    loaded = entries[0]
    assert loaded["kind"] == FINE_TUNED and loaded["examples_per_s"] == 55.0 and loaded["model_size_mb"] == 2.0
    assert loaded["labels"] == SCHEMES[3].to_dict() and len(loaded["predictions"]) == N  # test rows only
    assert list(loaded["predictions"].columns) == ["idx", "label", "pred", "prob_0", "prob_1", "prob_2"]
    metrics = run.metrics()
    del metrics["inference"]
    run.write_metrics(metrics)
    run.log_path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "eval_samples_per_second": 60.5}\n')
    assert load_entries([run.path])[0]["examples_per_s"] == 60.5
    table = compare([run.path, tmp_path / "baselines"], tmp_path / "cmp")
    assert table["rows"][0]["name"] == "distilbert" and table["best_baseline"] == "tfidf-lr"
    assert table["rows"][0]["mcnemar_vs_best_baseline"]["accuracy_a"] == pytest.approx(tuned["metrics"]["accuracy"])


def test_first_format_binary_run_folder_still_compares(tmp_path):
    """A run from before N-class support: `prob`/`margin` columns, no label scheme, no macro metrics."""
    tuned = entry("old-run", FINE_TUNED, 0.9, 3)
    run = tmp_path / "old-run"
    (run / "model").mkdir(parents=True)
    old = {k: tuned["metrics"][k] for k in ("n", "accuracy", "accuracy_ci95", "f1", "precision", "recall", "roc_auc")}
    (run / "metrics.json").write_text(json.dumps({"test": old, "examples": {"test": tuned["examples"]}}))
    p = tuned["predictions"]
    pd.DataFrame({"split": "test", "idx": p["idx"], "label": p["label"], "prob": p["prob_1"], "pred": p["pred"],
                  "margin": np.log(p["prob_1"] / p["prob_0"])}).to_parquet(run / "predictions.parquet", index=False)
    table = comparison([*load_entries([run]), entry("tfidf-lr", "classical", 0.8, 1)])
    row = next(r for r in table["rows"] if r["name"] == "old-run")
    assert row["f1_macro"] == pytest.approx(tuned["metrics"]["f1_macro"]) and row["accuracy"] == old["accuracy"]
    baseline = next(r for r in table["rows"] if r["name"] == "tfidf-lr")
    assert row["bootstrap_f1_macro_vs_best_baseline"]["delta"] == pytest.approx(row["f1_macro"] - baseline["f1_macro"])


def test_bad_paths_and_duplicate_names(tmp_path):
    with pytest.raises(SentituneError, match="neither a run folder"):
        load_entries([tmp_path])
    with pytest.raises(SentituneError, match="nothing to compare"):
        comparison([])
    table = comparison([entry("vader", "lexicon", 0.7, 1), entry("vader", "lexicon", 0.6, 2)])
    assert {r["name"] for r in table["rows"]} == {"vader", "vader#2"}
    assert table["headline"] == "No fine-tuned run to set against the baselines."
