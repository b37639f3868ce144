"""Baselines on synthetic 2-, 3- and 5-class texts and tiny random models (the star model stands in for nlptown's)."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_bert

from sentitune.core.errors import SentituneError
from sentitune.core.labels import LabelScheme
from sentitune.data import decided_max_length
from sentitune.evaluation.baselines import (
    argmax_polarity,
    as_frame,
    best_threshold,
    evaluate_baseline,
    expected_stars,
    fit_baseline,
    load_baseline,
    run_baseline,
    save_baseline,
    spearman,
    star_mapping,
    star_values,
)
from sentitune.models.loading import load_tokenizer
from sentitune.run.folder import probabilities

STARS_5 = {0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"}
BINARY = LabelScheme(("negative", "positive"))
THREE = LabelScheme(("negative", "neutral", "positive"), ordinal=True)
FIVE = LabelScheme(("1 star", "2 stars", "3 stars", "4 stars", "5 stars"), ordinal=True)
POSITIVE = ["great", "wonderful", "superb", "brilliant", "loved", "excellent"]
NEGATIVE = ["awful", "terrible", "boring", "worst", "hated", "dreadful"]
MIDDLE = ["average", "okay", "fine", "ordinary", "mediocre", "moderate"]
NEUTRAL = ["film", "movie", "plot", "actors", "the", "story", "scene", "was"]
EXAMPLES = {"split": "test", "seed": 0, "size": 40, "per_class": 20, "fingerprint": "synthetic"}


def reviews(n: int, seed: int, offset: int = 0, k: int = 2) -> pd.DataFrame:
    """Toy reviews of k classes (2: negative/positive, 3: with a middle class) made of a few class words among
    neutral ones; ratings 1-4 / 7-10 for binary; one movie per 4 rows."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    words = [NEGATIVE, POSITIVE] if k == 2 else [NEGATIVE, MIDDLE, POSITIVE]
    texts = [" ".join(rng.choice(NEUTRAL, 6).tolist() + rng.choice(words[y], 2).tolist()) for y in labels]
    ratings = np.where(labels == labels.max(), rng.integers(7, 11, n), rng.integers(1, 5, n))
    return pd.DataFrame({"text": texts, "label": labels, "idx": np.arange(n) + offset, "rating": ratings,
                         "movie": [f"tt{offset + i // 4}" for i in range(n)]})


def splits_of(k: int) -> dict:
    return {"train": reviews(120, 0, k=k), "validation": reviews(42, 1, 1000, k=k), "test": reviews(42, 2, 2000, k=k)}


@pytest.fixture(scope="module")
def splits():
    return {"train": reviews(120, 0), "validation": reviews(40, 1, 1000), "test": reviews(40, 2, 2000)}


def teach(folder, frame: pd.DataFrame) -> str:
    """Train a saved tiny star model for a few full-batch steps to predict stars (rating / 2) on `frame`, so that
    star mappings, threshold search and rank correlation have a signal to find."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    model, tokenizer = BertForSequenceClassification.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(frame["text"].tolist(), padding=True, return_tensors="pt")
    stars = torch.tensor((np.ceil(frame["rating"].to_numpy() / 2) - 1).astype(int))
    torch.manual_seed(0)
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
    return str(folder)


@pytest.fixture(scope="module")
def star_model(tmp_path_factory):
    folder = tiny_bert(tmp_path_factory.mktemp("star"), num_labels=5, id2label=STARS_5)
    return teach(folder, reviews(120, 0))


@pytest.fixture(scope="module")
def random_star_model(tmp_path_factory):
    return str(tiny_bert(tmp_path_factory.mktemp("random-star"), num_labels=5, id2label=STARS_5))


# ---------------------------------------------------------------- star mapping logic


def test_star_values_detects_star_labels():
    assert star_values(STARS_5).tolist() == [1, 2, 3, 4, 5]
    assert star_values({"0": "1", "1": "2", "2": "3"}).tolist() == [1, 2, 3]
    assert star_values({0: "negative", 1: "positive"}) is None
    assert star_values({0: "1 star", 1: "1 star", 2: "2 stars"}) is None


def test_star_mapping_is_native_for_five_classes_and_groups_for_three():
    probs = np.array([[0.1, 0.2, 0.3, 0.15, 0.25]])
    stars = np.array([3.0, 1.0, 2.0, 5.0, 4.0])  # a model whose classes are not in star order
    assert (probs @ star_mapping(stars, 5)).tolist() == [[0.2, 0.3, 0.1, 0.25, 0.15]]  # 1 star first
    three = probs @ star_mapping(stars, 3)
    assert three[0] == pytest.approx([0.2 + 0.3, 0.1, 0.25 + 0.15])  # 1-2 / 3 / 4-5 stars
    assert star_mapping(stars, 4) is None
    assert star_mapping(np.array([1.0, 2.0, 3.0, 4.0]), 3) is None  # no middle star


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
    assert best_threshold(expected, labels, 3.0) == 3.0  # 3.0 already separates: the tie goes to the default
    shifted = np.array([2.8, 3.1, 3.3, 3.6, 4.0, 4.4])
    assert best_threshold(shifted, labels, 3.0) == pytest.approx((3.3 + 3.6) / 2)


def test_spearman():
    assert spearman(np.array([1.0, 2.0, 3.5]), np.array([1, 4, 9])) == pytest.approx(1.0)
    assert spearman(np.array([2.0, 2.0]), np.array([1, 2])) is None


# ---------------------------------------------------------------- star model end to end


def test_star_binary_entries_on_trained_stand_in(star_model, splits):
    results = run_baseline("star", splits, EXAMPLES, BINARY, model=star_model, precision="fp32")
    by_name = {r["name"]: r for r in results}
    assert set(by_name) == {"star-argmax", "star-expected", "star-expected-val"}
    for r in results:
        assert r["metrics"]["n"] == 40 and r["examples"] == EXAMPLES and r["examples_per_s"] > 0
        assert r["extra"]["stars"] == [1, 2, 3, 4, 5] and r["extra"]["precision"] == "fp32"
        assert r["extra"]["spearman_expected_vs_rating"] > 0.5
        assert 0 <= r["extra"]["neutral_share"] <= 1
        assert r["labels"] == BINARY.to_dict() and r["metrics"]["labels"] == ["negative", "positive"]
    tuned = by_name["star-expected-val"]
    assert tuned["extra"]["star_threshold"] == tuned["extra"]["validation_best_threshold"]
    assert tuned["extra"]["validation_accuracy_at_best"] >= 0.9 and tuned["metrics"]["accuracy"] >= 0.8
    assert by_name["star-expected"]["extra"]["star_threshold"] == 3.0
    # the expected-star decision is exactly "expected stars >= threshold", whatever the argmax of the columns says
    expected = 1 + 4 * tuned["predictions"]["prob_1"].to_numpy()
    assert ((expected >= tuned["extra"]["star_threshold"] - 1e-9).astype(int) == tuned["predictions"]["pred"]).all()
    pred = tuned["predictions"]["pred"].to_numpy()
    assert tuned["metrics"]["accuracy"] == pytest.approx((pred == tuned["predictions"]["label"]).mean())
    argmax = by_name["star-argmax"]
    wrong = (argmax["predictions"]["pred"] != argmax["predictions"]["label"]).mean()
    assert wrong >= argmax["extra"]["neutral_share"] - 1e-9
    assert set(probabilities(argmax["predictions"]).ravel()) <= {0.0, 1.0}  # the hard decision as probabilities


def test_star_is_native_on_five_classes_and_sums_stars_for_three(random_star_model, capsys):
    five = {split: f.assign(label=np.arange(len(f)) % 5) for split, f in splits_of(2).items()}
    (native,) = run_baseline("star", five, EXAMPLES, FIVE, model=random_star_model)
    three = {split: f.assign(label=np.arange(len(f)) % 3) for split, f in splits_of(2).items()}
    (mapped,) = run_baseline("star", three, EXAMPLES, THREE, model=random_star_model)
    assert native["name"] == mapped["name"] == "star" and native["extra"]["mapping"].startswith("native")
    p5, p3 = probabilities(native["predictions"]), probabilities(mapped["predictions"])
    assert p5.shape == (42, 5) and p3.shape == (42, 3) and np.allclose(p5.sum(1), 1.0, atol=1e-5)
    assert np.allclose(p3, np.stack([p5[:, :2].sum(1), p5[:, 2], p5[:, 3:].sum(1)], 1), atol=1e-6)
    assert (native["predictions"]["pred"] == p5.argmax(1)).all()
    assert native["metrics"]["n_classes"] == 5 and "qwk" in native["metrics"] and "f1" not in native["metrics"]
    four = LabelScheme(("a", "b", "c", "d"))
    assert run_baseline("star", five, EXAMPLES, four, model=random_star_model) == []
    assert "star: skipped" in capsys.readouterr().out


def test_star_rejects_non_star_models_and_missing_models(tmp_path, splits, monkeypatch):
    binary = str(tiny_bert(tmp_path / "binary", id2label={0: "negative", 1: "positive"}))
    with pytest.raises(SentituneError, match="not star ratings"):
        fit_baseline("star", splits, BINARY, model=binary)
    with pytest.raises(SentituneError, match="local model folder"):
        fit_baseline("star", splits, BINARY, model=str(tmp_path / "missing"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SentituneError, match="Hub"):
        fit_baseline("star", splits, BINARY, model="nlptown/bert-base-multilingual-uncased-sentiment")


# ---------------------------------------------------------------- majority, tfidf, vader


def test_majority_predicts_the_most_frequent_training_class():
    train = reviews(120, 0, k=3)
    train = pd.concat([train, train[train["label"] == 2].assign(idx=lambda d: d["idx"] + 500)], ignore_index=True)
    test = reviews(30, 2, 2000, k=3)
    (result,) = run_baseline("majority", {"train": train, "test": test}, EXAMPLES, THREE)
    assert result["name"] == "majority" and result["kind"] == "trivial" and result["extra"]["class"] == "positive"
    assert (result["predictions"]["pred"] == 2).all()
    assert result["metrics"]["accuracy"] == pytest.approx(1 / 3)
    assert probabilities(result["predictions"])[0] == pytest.approx([40 / 160, 40 / 160, 80 / 160])
    assert result["extra"]["train_shares"] == {"negative": 0.25, "neutral": 0.25, "positive": 0.5}


def test_tfidf_learns_toy_sentiment_with_cv_chosen_C(splits):
    (result,) = run_baseline("tfidf", splits, EXAMPLES, BINARY)
    assert result["name"] == "tfidf-lr" and result["kind"] == "classical"
    assert result["metrics"]["accuracy"] >= 0.9 and result["extra"]["solver"] == "liblinear"
    assert result["extra"]["train_size"] == 160  # train + validation
    assert result["extra"]["C"] in [float(c) for c in result["extra"]["cv_accuracy"]]
    assert result["model_size_mb"] > 0


def test_tfidf_is_multinomial_on_three_classes():
    (result,) = run_baseline("tfidf", splits_of(3), EXAMPLES, THREE)
    assert result["extra"]["solver"] == "lbfgs" and result["extra"]["C"] in map(float, result["extra"]["cv_f1_macro"])
    assert probabilities(result["predictions"]).shape == (42, 3)
    assert result["metrics"]["f1_macro"] >= 0.8 and {"mae", "qwk"} <= set(result["metrics"])


def test_vader_standard_threshold():
    frame = pd.DataFrame({"text": ["I loved it, a wonderful and great film.", "Awful, boring and the worst film ever.",
                                   "A film."], "label": [1, 0, 0], "idx": [0, 1, 2]})
    (result,) = evaluate_baseline(fit_baseline("vader", {"train": frame}, BINARY), frame, EXAMPLES, BINARY)
    assert result["predictions"]["pred"].tolist() == [1, 0, 0]  # compound 0 (neutral) is below 0.05
    assert result["predictions"]["prob_1"].iloc[2] == pytest.approx(0.5)  # ... though P(positive) = (0 + 1) / 2
    assert result["metrics"]["accuracy"] == 1.0


def test_vader_neutral_band_on_three_classes():
    frame = pd.DataFrame({"text": ["I loved it, a wonderful and great film.", "A film.",
                                   "Awful, boring and the worst film ever.", "It was fine."],
                          "label": [2, 1, 0, 2], "idx": range(4)})
    (result,) = evaluate_baseline(fit_baseline("vader", {"train": frame}, THREE), frame, EXAMPLES, THREE)
    assert result["predictions"]["pred"].tolist() == [2, 1, 0, 2]  # |compound| < 0.05 only for "A film."
    assert result["extra"]["scale"] == "three" and result["extra"]["neutral_share"] == 0.25
    assert (result["predictions"]["pred"] == probabilities(result["predictions"]).argmax(1)).all()


def test_vader_is_not_applicable_to_other_schemes(capsys):
    five = {split: f.assign(label=np.arange(len(f)) % 5) for split, f in splits_of(2).items()}
    assert run_baseline("vader", five, EXAMPLES, FIVE) == []
    assert "vader: skipped" in capsys.readouterr().out
    emotions = fit_baseline("vader", splits_of(3), LabelScheme(("anger", "joy", "sadness")))
    assert "anger" in emotions.not_applicable and emotions.score(splits_of(3)["test"]) == {}


# ---------------------------------------------------------------- base encoder


def test_base_model_zero_shot_and_probe_on_tiny_encoder(tmp_path, splits):
    encoder = str(tiny_bert(tmp_path / "encoder"))
    results = run_baseline("base", splits, EXAMPLES, BINARY, model=encoder, probe_per_class=30)
    assert [r["name"] for r in results] == ["base-zero-shot", "base-probe"]
    assert results[0]["extra"]["descriptions"] == ["a negative movie review", "a positive movie review"]
    # the encoder reads as many tokens as fine-tuning would decide for these training texts
    decided = decided_max_length(None, splits["train"]["text"], load_tokenizer(encoder))["value"]
    assert results[1]["extra"]["probe_train_size"] == 60 and results[1]["extra"]["max_length"] == decided
    for r in results:
        assert np.allclose(probabilities(r["predictions"]).sum(1), 1.0)


def test_base_model_on_three_classes_describes_each_class(tmp_path):
    encoder = str(tiny_bert(tmp_path / "encoder"))
    zero_shot, probe = run_baseline("base", splits_of(3), EXAMPLES, THREE, model=encoder, probe_per_class=50)
    assert zero_shot["extra"]["descriptions"] == ["a negative text", "a neutral text", "a positive text"]
    assert probe["extra"]["probe_train_size"] == 120 and probe["extra"]["solver"] == "lbfgs"  # 40 per class exist
    assert probabilities(probe["predictions"]).shape == (42, 3) and probe["metrics"]["n_classes"] == 3
    with pytest.raises(SentituneError, match="one per class"):
        fit_baseline("base", splits_of(3), THREE, model=encoder, descriptions=("good", "bad"))


def test_base_model_minilm_zero_shot_ranks_obvious_reviews_in_bf16_and_fp32():
    texts = ["This movie was wonderful, I loved every minute.", "A brilliant, moving film with great acting.",
             "Terrible movie, boring and far too long.", "The worst film I have seen, awful acting."]
    frame = pd.DataFrame({"text": texts, "label": [1, 1, 0, 0], "idx": range(4)})
    train = {"train": pd.concat([frame] * 3, ignore_index=True)}
    probs = []
    for precision in ("bf16", "fp32"):
        baseline = fit_baseline("base", train, BINARY, probe_per_class=6, precision=precision)
        zero_shot = evaluate_baseline(baseline, frame, EXAMPLES, BINARY)[0]
        assert zero_shot["metrics"]["roc_auc"] == 1.0 and zero_shot["extra"]["precision"] == precision
        assert zero_shot["extra"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
        probs.append(zero_shot["predictions"]["prob_1"].to_numpy())
    assert np.abs(probs[0] - probs[1]).max() < 0.05


# ---------------------------------------------------------------- storage and errors


def test_save_and_load_round_trip(tmp_path, splits):
    (result,) = run_baseline("vader", splits, EXAMPLES, BINARY)
    folder = save_baseline(result, tmp_path / "baselines")
    assert sorted(p.name for p in folder.iterdir()) == ["baseline.json", "predictions.parquet"]
    saved = json.loads((folder / "baseline.json").read_text())
    assert "predictions" not in saved and saved["labels"] == BINARY.to_dict()
    loaded = load_baseline(folder)
    assert loaded["metrics"] == json.loads(json.dumps(result["metrics"]))
    assert list(loaded["predictions"].columns) == ["idx", "label", "pred", "confidence", "prob_0", "prob_1"]
    pd.testing.assert_frame_equal(loaded["predictions"], result["predictions"])
    save_baseline(result, tmp_path / "baselines")  # overwriting an existing folder is fine
    assert [p.name for p in (tmp_path / "baselines").iterdir()] == ["vader"]


def test_bad_input_is_one_line_error(splits):
    with pytest.raises(SentituneError, match="unknown"):
        fit_baseline("bert", splits, BINARY)
    with pytest.raises(SentituneError, match="missing column"):
        as_frame(pd.DataFrame({"text": ["a"], "label": [1]}))
