"""Baselines on synthetic reviews and tiny random models (the star model stands in for nlptown's)."""

import json

import numpy as np
import pandas as pd
import pytest

from sentitune.baselines import (
    argmax_polarity, as_frame, best_threshold, expected_stars, fit_baseline, evaluate_baseline, load_baseline,
    run_baseline, save_baseline, spearman, star_values,
)
from sentitune.errors import SentituneError

STARS_5 = {0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"}
POSITIVE = ["great", "wonderful", "superb", "brilliant", "loved", "excellent"]
NEGATIVE = ["awful", "terrible", "boring", "worst", "hated", "dreadful"]
NEUTRAL = ["film", "movie", "plot", "actors", "the", "story", "scene", "was"]
EXAMPLES = {"split": "test", "seed": 0, "size": 40, "per_class": 20, "fingerprint": "synthetic"}


def reviews(n: int, seed: int, offset: int = 0) -> pd.DataFrame:
    """Balanced toy reviews: a few sentiment words among neutral ones; ratings 1-4 / 7-10; one movie per 4 rows."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    texts = [" ".join(rng.choice(NEUTRAL, 6).tolist() + rng.choice(POSITIVE if y else NEGATIVE, 2).tolist()) for y in labels]
    ratings = np.where(labels == 1, rng.integers(7, 11, n), rng.integers(1, 5, n))
    return pd.DataFrame({"text": texts, "label": labels, "idx": np.arange(n) + offset, "rating": ratings,
                         "movie": [f"tt{offset + i // 4}" for i in range(n)]})


@pytest.fixture(scope="module")
def splits():
    return {"train": reviews(120, 0), "validation": reviews(40, 1, 1000), "test": reviews(40, 2, 2000)}


def tiny_bert(folder, id2label: dict, seed: int = 0, teach: pd.DataFrame | None = None) -> str:
    """A 2-layer, 32-wide BERT with a small word-level vocab, saved with save_pretrained.

    Random, or with `teach` given, trained for a few full-batch steps to predict stars (rating / 2) on it,
    so that star mappings, threshold search and rank correlation have a signal to find.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *NEUTRAL, "a", "review", "movie"]))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=len(id2label), id2label=id2label,
                        label2id={v: k for k, v in id2label.items()})
    model, tokenizer = BertForSequenceClassification(config), BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    if teach is not None:
        batch = tokenizer(teach["text"].tolist(), padding=True, return_tensors="pt")
        stars = torch.tensor((np.ceil(teach["rating"].to_numpy() / 2) - 1).astype(int))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny ops: extra threads only fight other jobs on the shared cores
        try:
            for _ in range(40):
                optimizer.zero_grad()
                model(**batch, labels=stars).loss.backward()
                optimizer.step()
        finally:
            torch.set_num_threads(threads)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def star_model(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("star"), STARS_5, teach=reviews(120, 0))


# ---------------------------------------------------------------- star mapping logic


def test_star_values_detects_star_labels():
    assert star_values(STARS_5).tolist() == [1, 2, 3, 4, 5]
    assert star_values({"0": "1", "1": "2", "2": "3"}).tolist() == [1, 2, 3]
    assert star_values({0: "negative", 1: "positive"}) is None
    assert star_values({0: "1 star", 1: "1 star", 2: "2 stars"}) is None


def test_argmax_counts_middle_star_wrong_and_expected_stars():
    stars = np.arange(1.0, 6.0)
    probs = np.array([[0.7, 0.1, 0.1, 0.05, 0.05],   # 1 star -> negative
                      [0.0, 0.0, 0.1, 0.2, 0.7],     # 5 stars -> positive
                      [0.1, 0.1, 0.6, 0.1, 0.1],     # 3 stars, label 1 -> wrong
                      [0.1, 0.1, 0.6, 0.1, 0.1]])    # 3 stars, label 0 -> wrong
    labels = np.array([0, 1, 1, 0])
    hard, neutral = argmax_polarity(probs, stars, labels)
    assert neutral.tolist() == [False, False, True, True]
    assert hard.tolist() == [0, 1, 0, 1]
    assert expected_stars(probs, stars) == pytest.approx([1.65, 4.6, 3.0, 3.0])


def test_best_threshold_separates_and_prefers_default_on_ties():
    expected = np.array([1.5, 2.0, 2.6, 3.4, 3.9, 4.5])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert 2.6 < best_threshold(expected, labels, 3.0) <= 3.4
    assert best_threshold(expected, labels, 3.0) == 3.0  # 3.0 already separates: the tie goes to the default
    shifted = np.array([2.8, 3.1, 3.3, 3.6, 4.0, 4.4])
    assert best_threshold(shifted, labels, 3.0) == pytest.approx((3.3 + 3.6) / 2)


def test_spearman():
    assert spearman(np.array([1.0, 2.0, 3.5]), np.array([1, 4, 9])) == pytest.approx(1.0)
    assert spearman(np.array([2.0, 2.0]), np.array([1, 2])) is None


def test_star_model_end_to_end_on_tiny_stand_in(star_model, splits):
    results = run_baseline("star", splits, EXAMPLES, model=star_model, bf16=False)
    by_name = {r["name"]: r for r in results}
    assert set(by_name) == {"star-argmax", "star-expected", "star-expected-val"}
    for r in results:
        assert r["metrics"]["n"] == 40 and r["examples"] == EXAMPLES and r["examples_per_s"] > 0
        assert r["extra"]["stars"] == [1, 2, 3, 4, 5]
        assert r["extra"]["spearman_expected_vs_rating"] > 0.5
        assert 0 <= r["extra"]["neutral_share"] <= 1
    tuned = by_name["star-expected-val"]
    assert tuned["extra"]["star_threshold"] == tuned["extra"]["validation_best_threshold"]
    assert tuned["extra"]["validation_accuracy_at_best"] >= 0.9 and tuned["metrics"]["accuracy"] >= 0.8
    assert by_name["star-expected"]["extra"]["star_threshold"] == 3.0
    # the expected-star decision is exactly "expected stars >= threshold"
    expected = 1 + 4 * tuned["predictions"]["prob"].to_numpy()
    assert ((expected >= tuned["extra"]["star_threshold"] - 1e-9).astype(int) == tuned["predictions"]["pred"]).all()
    argmax = by_name["star-argmax"]
    wrong = (argmax["predictions"]["pred"] != argmax["predictions"]["label"]).mean()
    assert wrong >= argmax["extra"]["neutral_share"] - 1e-9


def test_star_rejects_non_star_models_and_missing_models(tmp_path, splits, monkeypatch):
    binary = tiny_bert(tmp_path / "binary", {0: "negative", 1: "positive"})
    with pytest.raises(SentituneError, match="not star ratings"):
        fit_baseline("star", splits, model=binary)
    with pytest.raises(SentituneError, match="local model folder"):
        fit_baseline("star", splits, model=str(tmp_path / "missing"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SentituneError, match="Hub"):
        fit_baseline("star", splits, model="nlptown/bert-base-multilingual-uncased-sentiment")


# ---------------------------------------------------------------- other families


def test_tfidf_learns_toy_sentiment_with_cv_chosen_C(splits):
    (result,) = run_baseline("tfidf", splits, EXAMPLES)
    assert result["name"] == "tfidf-lr" and result["kind"] == "classical"
    assert result["metrics"]["accuracy"] >= 0.9
    assert result["extra"]["train_size"] == 160  # train + validation
    assert result["extra"]["C"] in [float(c) for c in result["extra"]["cv_accuracy"]]
    assert result["model_size_mb"] > 0


def test_vader_standard_threshold():
    frame = pd.DataFrame({"text": ["I loved it, a wonderful and great film.", "Awful, boring and the worst film ever.", "A film."],
                          "label": [1, 0, 0], "idx": [0, 1, 2]})
    baseline = fit_baseline("vader", {"train": frame})
    (result,) = evaluate_baseline(baseline, frame, EXAMPLES)
    assert result["predictions"]["pred"].tolist() == [1, 0, 0]  # compound 0 (neutral) is below 0.05
    assert result["metrics"]["accuracy"] == 1.0


def test_base_model_zero_shot_and_probe_on_tiny_encoder(tmp_path, splits):
    encoder = tiny_bert(tmp_path / "encoder", {0: "LABEL_0", 1: "LABEL_1"})
    results = run_baseline("base", splits, EXAMPLES, model=encoder, probe_per_class=30)
    assert [r["name"] for r in results] == ["base-zero-shot", "base-probe"]
    assert results[1]["extra"]["probe_train_size"] == 60 and results[1]["extra"]["max_length"] == 256
    for r in results:
        assert ((r["predictions"]["prob"] >= 0) & (r["predictions"]["prob"] <= 1)).all()


def test_base_model_minilm_zero_shot_ranks_obvious_reviews_in_bf16_and_fp32():
    texts = ["This movie was wonderful, I loved every minute.", "A brilliant, moving film with great acting.",
             "Terrible movie, boring and far too long.", "The worst film I have seen, awful acting."]
    frame = pd.DataFrame({"text": texts, "label": [1, 1, 0, 0], "idx": range(4)})
    train = {"train": pd.concat([frame] * 3, ignore_index=True)}
    probs = []
    for bf16 in (True, False):
        zero_shot = evaluate_baseline(fit_baseline("base", train, probe_per_class=6, bf16=bf16), frame, EXAMPLES)[0]
        assert zero_shot["metrics"]["roc_auc"] == 1.0 and zero_shot["extra"]["bf16"] is bf16
        probs.append(zero_shot["predictions"]["prob"].to_numpy())
    assert np.abs(probs[0] - probs[1]).max() < 0.05


def test_save_and_load_round_trip(tmp_path, splits):
    (result,) = run_baseline("vader", splits, EXAMPLES)
    folder = save_baseline(result, tmp_path / "baselines")
    assert sorted(p.name for p in folder.iterdir()) == ["baseline.json", "predictions.parquet"]
    assert "predictions" not in json.loads((folder / "baseline.json").read_text())
    loaded = load_baseline(folder)
    assert loaded["metrics"] == result["metrics"]
    assert list(loaded["predictions"].columns) == ["idx", "label", "prob", "pred"]
    pd.testing.assert_frame_equal(loaded["predictions"], result["predictions"])
    save_baseline(result, tmp_path / "baselines")  # overwriting an existing folder is fine
    assert [p.name for p in (tmp_path / "baselines").iterdir()] == ["vader"]


def test_bad_input_is_one_line_error(splits):
    with pytest.raises(SentituneError, match="unknown"):
        fit_baseline("bert", splits)
    with pytest.raises(SentituneError, match="missing column"):
        as_frame(pd.DataFrame({"text": ["a"], "label": [1]}))
