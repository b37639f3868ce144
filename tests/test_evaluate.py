"""evaluation.evaluate: slices, error analysis, temperature scaling and whole runs, on two, three and five classes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import tiny_bert

from sentitune.core.errors import SentituneError
from sentitune.core.labels import LabelScheme
from sentitune.core.metrics import classification_metrics, softmax
from sentitune.data import DataConfig, clean_text
from sentitune.evaluation.evaluate import error_examples, evaluate_run, excerpt, excerpt_words, has_negation, slices
from sentitune.run.folder import RunFolder, prediction_columns, probabilities

SCHEMES = {2: LabelScheme(("negative", "positive")), 3: LabelScheme(("negative", "neutral", "positive"), True),
           5: LabelScheme(("very negative", "negative", "neutral", "positive", "very positive"), True)}


def scored_split(rng, split: str, n: int, k: int, scale: float = 3.0) -> pd.DataFrame:
    """n rows of k classes, over-confident by `scale` (so temperature scaling has work to do)."""
    label = rng.integers(0, k, n)
    logits = scale * (np.eye(k)[label] * 1.5 + rng.normal(0, 1.0, (n, k)))
    texts = [("not " if i % 3 == 0 else "") + f"text {i} " + "word " * int(rng.integers(2, 60)) for i in range(n)]
    return pd.DataFrame({"split": split, "idx": np.arange(n), "text": texts, "label": label,
                         **prediction_columns(softmax(logits), logits), "n_tokens": rng.integers(5, 120, n),
                         "truncated": False, "rating": -1})


def make_run(root, k: int = 3, name: str = "run") -> RunFolder:
    rng = np.random.default_rng(k)
    run = RunFolder.of(root, name)
    run.model_dir.mkdir(parents=True)
    frame = pd.concat([scored_split(rng, "validation", 300, k), scored_split(rng, "test", 500, k)], ignore_index=True)
    run.write_predictions(frame)
    scheme = SCHEMES[k]
    metrics = {"labels": scheme.to_dict(),
               "examples": {"test": {"split": "test", "size": 500, "fingerprint": "f" * 16}}}
    for split, part in frame.groupby("split"):
        metrics[split] = classification_metrics(part["label"], probabilities(part), scheme.names, scheme.ordinal)
    run.write_metrics(metrics)
    run.config_path.write_text(yaml.safe_dump({"name": name, "output_dir": str(root), "model": "m", "max_length": 64,
                                               "data": {"data": "somewhere"}}))
    (run.path / "log.jsonl").write_text('{"step": 10, "loss": 0.9, "learning_rate": 1e-4}\n'
                                        '{"step": 10, "eval_loss": 0.8, "eval_f1_macro": 0.6, "eval_accuracy": 0.6}\n')
    return run


@pytest.mark.parametrize("k", [2, 3, 5])
def test_evaluate_run_agrees_with_metrics_json_and_calibrates(tmp_path, k):
    run = make_run(tmp_path, k)
    evaluation = evaluate_run(run.path)
    saved, recorded = run.evaluation(), run.metrics()["test"]
    for key in ("n", "accuracy", "f1_macro", "recall_macro", "ece", "accuracy_ci95"):
        assert saved["metrics"][key] == pytest.approx(recorded[key]), key
    assert saved["matches_metrics_json"] is True and saved["labels"]["names"] == list(SCHEMES[k].names)
    assert ("mae" in saved["metrics"]) == SCHEMES[k].ordinal and len(saved["metrics"]["confusion_matrix"]) == k
    t = saved["temperature"]  # over-confident by construction: T > 1 and a lower ECE after scaling
    assert t["value"] > 1.5 and t["metrics_after"]["ece"] < t["metrics_before"]["ece"]
    assert t["metrics_after"]["accuracy"] == t["metrics_before"]["accuracy"]
    assert set(saved["errors"]["confident"]) == set(SCHEMES[k].names)
    assert sum(saved["errors"]["n_errors"].values()) == round(500 * (1 - recorded["accuracy"]))
    assert ("class" in saved["slices"]) == (k > 2)
    for path in evaluation["plots"].values():
        assert (run.path / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_error_examples_are_the_most_confident_mistakes():
    probs = np.array([[0.01, 0.99], [0.3, 0.7], [0.98, 0.02], [0.6, 0.4], [0.9, 0.1], [0.1, 0.9]])
    frame = pd.DataFrame({"idx": range(6), "label": [0, 0, 1, 1, 0, 1], "text": ["x" * 1000] + ["short"] * 5,
                          **prediction_columns(probs)})
    errors = error_examples(frame, ["negative", "positive"], top_n=1)
    assert errors["confident"]["negative"][0]["idx"] == 0 and errors["confident"]["positive"][0]["idx"] == 2
    assert errors["least_sure"][0]["idx"] == 3 and errors["n_errors"] == {"negative": 2, "positive": 2}
    row = errors["confident"]["negative"][0]
    assert (row["label"], row["pred"], row["confidence"]) == ("negative", "positive", 0.99)
    assert "[...]" in row["text"] and len(row["text"]) < 420


def test_slices_by_class_length_and_negation():
    frame = pd.DataFrame({"label": [0, 1, 2, 2], "pred": [0, 1, 1, 2], "n_tokens": [10, 300, 40, 50],
                          "truncated": False, "text": ["not bad", "good", "ok", "fine"]})
    tables = slices(frame, 64, SCHEMES[3])
    assert [r["accuracy"] for r in tables["class"]] == [1.0, 1.0, 0.5]
    assert {r["group"]: r["n"] for r in tables["negation"]} == {"without negation": 3, "with negation": 1}


def test_negation_words():
    assert has_negation(["I did not like it", "It isn't good", "Never again", "nothing works"]).all()
    assert not has_negation(["A knotty, noble film", "Notable acting", ""]).any()


def test_evaluate_another_dataset_scores_all_of_a_single_file(tmp_path, monkeypatch):
    import sentitune.inference.predict as predict

    run = make_run(tmp_path, 3)
    texts = ([f"great film {i}" for i in range(20)] + [f"fine {i}" for i in range(20)]
             + [f"awful {i}" for i in range(20)])
    pd.DataFrame({"review": texts,
                  "mood": ["pos"] * 20 + ["neu"] * 20 + ["neg"] * 20}).to_csv(tmp_path / "o.csv", index=False)

    class Fake:
        max_length, labels = 64, SCHEMES[3]

        def score(self, texts, windows=False, clean=None):
            logits = np.array([[0, 0, 5.0] if "great" in t else [0, 5.0, 0] if "fine" in t else [5.0, 0, 0]
                               for t in texts])
            return predict.Scored(softmax(logits), logits, np.full(len(texts), 7))

    monkeypatch.setattr(predict.SentimentModel, "from_pretrained",
                        classmethod(lambda cls, path, backend="torch": Fake()))
    cfg = DataConfig(data=str(tmp_path / "o.csv"), text_column="review", label_column="mood")
    evaluation = evaluate_run(run.path, data_cfg=cfg, plots=False)
    assert evaluation["n"] == 60 and evaluation["metrics"]["accuracy"] == 1.0  # the whole file, not a 20% split
    assert run.evaluation(at=run.evaluation_dir("o.csv"))["n"] == 60 and not run.evaluation_path.exists()
    pd.DataFrame({"review": texts[:40], "mood": ["a"] * 20 + ["b"] * 20}).to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(SentituneError, match="differ from the 3 classes"):
        evaluate_run(run.path, data_cfg=DataConfig(data=str(tmp_path / "two.csv"), text_column="review",
                                                   label_column="mood"))


def test_evaluate_run_errors_are_one_line(tmp_path):
    with pytest.raises(SentituneError, match="no metrics.json"):
        evaluate_run(tmp_path / "missing")
    (tmp_path / ".x.partial").mkdir()
    with pytest.raises(SentituneError, match="unfinished run"):
        evaluate_run(tmp_path / ".x.partial")


def explained_rows(evaluation: dict) -> list[dict]:
    return [row for rows in evaluation["errors"]["confident"].values() for row in rows if "words" in row]


def test_the_most_confident_errors_are_explained_with_spans_into_their_excerpts(tmp_path):
    run = make_run(tmp_path, 3)
    tiny_bert(run.model_dir, num_labels=3)  # random weights; its classes are LABEL_i, not the run's names
    frame = run.predictions()
    run.write_predictions(frame.assign(text=frame["text"] + " and then the story goes on" * 20))  # excerpts
    evaluate_run(run.path, plots=False, explain_errors=3)
    saved = run.evaluation()
    explained, listed = explained_rows(saved), [r for rows in saved["errors"]["confident"].values() for r in rows]
    summary = saved["explanations"]
    assert len(explained) == 3 and summary["explained"] == 3 and summary["skipped"] is None
    assert summary["steps"] == 16 and summary["seconds"] > 0
    assert min(r["confidence"] for r in explained) >= max(r["confidence"] for r in listed if "words" not in r)
    for row in explained:
        assert row["target"] == row["pred"] and np.isfinite(row["delta"])
        text, words = row["text"], row["words"]
        assert "[...]" in text and words[0]["start"] == 0 and words[-1]["end"] == len(text)
        assert all(clean_text(text[w["start"]:w["end"]]) == w["word"] for w in words)
        assert all(abs(w["score"]) <= 1 for w in words) and any(w["score"] != 0 for w in words)


def test_explanations_are_skipped_with_a_reason(tmp_path):
    run = make_run(tmp_path, 2)  # model/ without weights, like the run folders kept in docs/runs
    for n, reason in ((5, "no model weights in the run's model/ folder"), (0, "not requested")):
        evaluate_run(run.path, plots=False, explain_errors=n)
        saved = run.evaluation()
        assert saved["explanations"]["explained"] == 0 and reason in saved["explanations"]["skipped"]
        assert not explained_rows(saved)


def test_excerpt_words_keep_the_start_and_end_with_spans_into_the_excerpt():
    text = "first words here " + "middle " * 100 + "the ending works"
    words = [{"word": m.group(), "start": m.start(), "end": m.end(), "score": 0.5} for m in re.finditer(r"\S+", text)]
    short, kept = excerpt(text), excerpt_words(words, text)
    assert [w["word"] for w in kept[:2]] == ["first", "words"] and [w["word"] for w in kept[-2:]] == ["ending", "works"]
    assert all(short[w["start"]:w["end"]] == w["word"] for w in kept) and len(kept) < len(words)
    assert excerpt_words(words[:3], "first words here") == words[:3]
