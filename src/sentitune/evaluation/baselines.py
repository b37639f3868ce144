"""Baselines the fine-tuned model has to beat, evaluated on exactly the same test examples, for 2..N classes.

Five families, each fitted once on train/validation (test is never read) and then evaluated on any test set:

- `majority`: always the most frequent training class; its probabilities are the training class shares. On
              imbalanced data it is the bar to clear, so it is always worth showing.
- `tfidf`:    word 1-2 gram TF-IDF + logistic regression (liblinear for two classes, multinomial lbfgs for more),
              C by 3-fold cross-validation on train+validation, grouped by movie when the data has a movie column.
- `vader`:    the VADER lexicon's compound score c in [-1, 1]. Two classes: positive when c >= 0.05 (the authors'
              threshold). Three classes named negative/neutral/positive: the neutral band |c| < 0.05. Any other
              scheme is not applicable: the family fits to a `Baseline` with no entries whose
              `extra["not_applicable"]` says why, and `run_baseline` prints that reason and returns [].
- `base`:     the base encoder before fine-tuning (default `models.default_model()`). `base-zero-shot`: softmax over
              the cosine similarities of mean-pooled embeddings to one description per class, temperature 0.05
              ("a negative/positive movie review" for binary sentiment, "a {name} text" otherwise); `base-probe`:
              multinomial logistic regression on frozen embeddings of up to `probe_per_class` rows per class.
- `star`:     a star-rating classifier (default nlptown/bert-base-multilingual-uncased-sentiment, "1 star".."5 stars").
              Five classes: native (the k-th lowest star is class k). Three classes: 1-2 / 3 / 4-5 stars, their
              probabilities summed (`star`). Two classes: `star-argmax` (1-2 stars negative, 4-5 positive, the
              middle star counted wrong), `star-expected` (expected stars >= 3.0) and `star-expected-val` (threshold
              best on validation). Other class counts are not applicable, as for vader.

A result entry is a dict: name, kind, family, labels (the scheme's dict), metrics (`metrics.classification_metrics`),
examples (the `data.examples_descriptor` of the test set), examples_per_s, model_size_mb, extra, and `predictions`
(DataFrame idx, label, pred, confidence, prob_0..prob_{K-1}; `pred` is the entry's own decision where it decides by
a threshold, as vader and star-expected do). `save_baseline`/`load_baseline` store it as a baseline folder.
"""

from __future__ import annotations

import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..core.errors import SentituneError
from ..core.labels import NEGATIVE_WORDS, POSITIVE_WORDS, SCALES, LabelScheme
from ..core.machine import Runtime

BASELINES = ("majority", "star", "base", "tfidf", "vader")
STAR_MODEL = "nlptown/bert-base-multilingual-uncased-sentiment"
LABEL_DESCRIPTIONS = ("a negative movie review", "a positive movie review")
# all-MiniLM-L6-v2 was trained contrastively with similarity scale 20, i.e. temperature 0.05.
ZERO_SHOT_TEMPERATURE = 0.05
VADER_THRESHOLD = 0.05
# spreads the three-class VADER scores [-c, 0.05, c] into probabilities; a ranking aid, the decision is the band
VADER_TEMPERATURE = 0.1
TFIDF_CS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


@dataclass
class Scores:
    """One entry's output on a test set: (n, K) class probabilities and, when it is not their argmax, the decision."""

    probs: np.ndarray
    kind: str = ""
    pred: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Baseline:
    """A fitted baseline family. `score(test_frame)` returns {entry name: Scores} for every entry ({} when the
    family does not apply to the label scheme; `extra["not_applicable"]` then says why)."""

    family: str
    score: Callable[[pd.DataFrame], dict[str, Scores]]
    model_size_mb: float
    extra: dict = field(default_factory=dict)

    @property
    def not_applicable(self) -> str | None:
        return self.extra.get("not_applicable")


def not_applicable(family: str, reason: str) -> Baseline:
    """A family that has nothing to say about this label scheme: no entries, and the reason."""
    return Baseline(family, lambda frame: {}, 0.0, {"not_applicable": reason})


# ---------------------------------------------------------------- entry points


def fit_baseline(name: str, splits, labels: LabelScheme, **opts) -> Baseline:
    """Fit baseline family `name` (one of BASELINES) on `splits` (train/validation; test is never read)."""
    if name not in FAMILIES:
        raise SentituneError(f"baseline '{name}': unknown; use one of {', '.join(BASELINES)}.")
    frames = {split: as_frame(splits[split]) for split in ("train", "validation") if split in splits}
    return FAMILIES[name](frames, labels, **opts)


def evaluate_baseline(baseline: Baseline, test, examples: dict, labels: LabelScheme) -> list[dict]:
    """Result entries of a fitted baseline on `test`; `examples` is the test set's examples descriptor."""
    frame = as_frame(test)
    start = time.perf_counter()
    scores = baseline.score(frame)
    rate = len(frame) / max(time.perf_counter() - start, 1e-9)
    return [result_entry(entry, s, frame, examples, labels, rate, baseline, {**baseline.extra, **s.extra})
            for entry, s in scores.items()]


def run_baseline(name: str, splits, examples: dict, labels: LabelScheme, **opts) -> list[dict]:
    """Fit family `name` and evaluate it on `splits["test"]`: one result entry per variant ([] and a printed
    reason when the family does not apply to the label scheme)."""
    baseline = fit_baseline(name, splits, labels, **opts)
    if baseline.not_applicable:
        print(f"baseline {name}: skipped, {baseline.not_applicable}")
        return []
    return evaluate_baseline(baseline, splits["test"], examples, labels)


def result_entry(name: str, scores: Scores, test: pd.DataFrame, examples: dict, labels: LabelScheme,
                 examples_per_s: float, baseline: Baseline, extra: dict) -> dict:
    """The result entry of one baseline variant: metrics, descriptor, speed, size and per-example predictions."""
    from ..core.metrics import classification_metrics

    y = test["label"].to_numpy().astype(int)
    probs = np.asarray(scores.probs, dtype=float)
    return {
        "name": name,
        "kind": scores.kind,
        "family": baseline.family,
        "labels": labels.to_dict(),
        "metrics": classification_metrics(y, probs, labels.names, labels.ordinal, pred=scores.pred),
        "examples": examples,
        "examples_per_s": round(float(examples_per_s), 2),
        "model_size_mb": round(float(baseline.model_size_mb), 2),
        "extra": extra,
        "predictions": prediction_table(test, probs, scores.pred),
    }


def prediction_table(test: pd.DataFrame, probs: np.ndarray, pred: np.ndarray | None) -> pd.DataFrame:
    """idx, label and the run's prediction columns; an explicit decision replaces the argmax, and the confidence
    is then the probability of the class it chose."""
    from ..run.folder import prediction_columns

    columns = prediction_columns(probs)
    if pred is not None:
        columns["pred"] = np.asarray(pred, dtype=int)
        columns["confidence"] = probs[np.arange(len(probs)), columns["pred"]]
    return pd.DataFrame({"idx": test["idx"].to_numpy(), "label": test["label"].to_numpy().astype(int), **columns})


def save_baseline(result: dict, out_dir: str | Path) -> Path:
    """Write the entry as the baseline folder `out_dir/<name>/` (atomically); returns the folder."""
    from ..run.folder import write_baseline

    return write_baseline(result, out_dir)


def load_baseline(folder: str | Path) -> dict:
    """A baseline folder written by `save_baseline`, as a result entry (predictions included)."""
    from ..run.folder import read_baseline

    return read_baseline(folder)


def as_frame(split) -> pd.DataFrame:
    """A split (datasets.Dataset or DataFrame) as a DataFrame with at least text, label and idx."""
    frame = split if isinstance(split, pd.DataFrame) else split.to_pandas()
    missing = {"text", "label", "idx"} - set(frame.columns)
    if missing:
        raise SentituneError(f"baseline input: missing column(s) {sorted(missing)}; "
                             "build the splits with sentitune.data.prepare_splits.")
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------- transformer inference


@dataclass
class Network:
    """A loaded transformer, its tokenizer and the runtime it runs under, reading texts as fine-tuning does."""

    model: object
    tokenizer: object
    runtime: Runtime
    max_length: int
    batch_size: int = 32
    truncation: str = "head+tail"

    @classmethod
    def load(cls, name: str, auto_class, runtime: Runtime, flag: str, trust_remote_code: bool = False,
             max_length: int | None = None, texts=(), **settings) -> "Network":
        """The model `name`, reading `max_length` tokens per text (None: decided from `texts` as training
        decides it, `data.decided_max_length`)."""
        from ..data import decided_max_length
        from ..models.loading import load_pretrained, load_tokenizer

        model = load_pretrained(name, auto_class, trust_remote_code, flag=flag).to(runtime.device).eval()
        tokenizer = load_tokenizer(name, trust_remote_code, flag=flag)
        return cls(model, tokenizer, runtime, decided_max_length(max_length, texts, tokenizer)["value"], **settings)

    def rows(self, texts: list[str], reduce: Callable) -> np.ndarray:
        """`reduce(outputs, attention_mask)` per text, texts cut to `max_length` tokens the way fine-tuning cuts
        them (`data.tokenize_function`), so baselines and the fine-tuned model read the same words."""
        from ..data import tokenize_function
        from ..inference.predict import batched_rows

        ids = tokenize_function(self.tokenizer, self.max_length, self.truncation)({"text": list(texts)})["input_ids"]
        return batched_rows(self.model, ids, self.tokenizer.pad_token_id or 0, reduce, self.batch_size, self.runtime)

    def describe(self) -> dict:
        return {"max_length": self.max_length, "device": str(self.runtime.device), "precision": self.runtime.precision}


def mean_pool(outputs, attention_mask):
    """Mean of the last hidden states over real (unpadded) tokens."""
    mask = attention_mask.unsqueeze(-1).to(outputs.last_hidden_state.dtype)
    return (outputs.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1)


def softmax_logits(outputs, attention_mask):
    """Class probabilities from a sequence-classification head (softmax in float32)."""
    return outputs.logits.float().softmax(-1)


def class_rows(rows: np.ndarray) -> np.ndarray:
    """float32 softmax rows as float64 probabilities that sum to 1 (the metrics check that they do)."""
    rows = np.asarray(rows, dtype=float)
    return rows / rows.sum(1, keepdims=True)


def parameter_mb(model) -> float:
    """Size of the model's weights and buffers in MB, at the dtype they are stored in."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


# ---------------------------------------------------------------- majority class


def fit_majority(frames: dict[str, pd.DataFrame], labels: LabelScheme, **_) -> Baseline:
    """The most frequent training class for every example, with the training class shares as probabilities."""
    counts = np.bincount(frames["train"]["label"].to_numpy(int), minlength=labels.n)
    shares = counts / counts.sum()
    extra = {"class": labels.names[int(shares.argmax())],
             "train_shares": dict(zip(labels.names, shares.round(4).tolist()))}

    def score(frame: pd.DataFrame) -> dict[str, Scores]:
        return {"majority": Scores(np.tile(shares, (len(frame), 1)), "trivial")}

    return Baseline("majority", score, 0.0, extra)


# ---------------------------------------------------------------- logistic regression with cross-validated C


def logistic_cv(features, labels: np.ndarray, groups: np.ndarray | None, seed: int, Cs: tuple[float, ...] = TFIDF_CS):
    """L2 logistic regression, C by 3-fold cross-validation (grouped by movie when known). Two classes: liblinear
    on accuracy, as always; more: the multinomial loss (lbfgs) on macro-F1, so that no class is given up."""
    from sklearn.linear_model import LogisticRegressionCV

    binary = len(np.unique(labels)) <= 2
    return LogisticRegressionCV(Cs=list(Cs), l1_ratios=(0.0,), cv=cv_folds(labels, groups, seed),
                                scoring="accuracy" if binary else "f1_macro", solver="liblinear" if binary else "lbfgs",
                                max_iter=1000, use_legacy_attributes=False).fit(features, labels)


def cv_report(clf) -> dict:
    """The chosen C, the solver and the mean cross-validated score of every C tried."""
    scores = clf.scores_.mean(0)[0]
    key = "cv_accuracy" if clf.solver == "liblinear" else "cv_f1_macro"
    return {"C": float(clf.C_), "solver": clf.solver,
            key: {f"{c:g}": round(float(a), 4) for c, a in zip(clf.Cs_, scores)}}


def class_probabilities(clf, features, k: int) -> np.ndarray:
    """(n, K) probabilities of a fitted classifier, a class it never saw in training getting 0."""
    probs = np.zeros((features.shape[0], k))
    probs[:, clf.classes_.astype(int)] = clf.predict_proba(features)
    return probs


def cv_folds(labels: np.ndarray, groups: np.ndarray | None, seed: int, n_splits: int = 3) -> list:
    """Stratified folds, grouped by movie when known so no movie is on both sides of a fold."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is not None:
        return list(StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(labels, labels, groups))
    return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(labels, labels))


def movie_groups(frame: pd.DataFrame) -> np.ndarray | None:
    """The movie of each row when every row has one (grouped cross-validation), else None."""
    return frame["movie"].to_numpy() if "movie" in frame.columns and frame["movie"].notna().all() else None


# ---------------------------------------------------------------- TF-IDF + logistic regression


def fit_tfidf(frames: dict[str, pd.DataFrame], labels: LabelScheme, Cs: tuple[float, ...] = TFIDF_CS, seed: int = 42,
              **_) -> Baseline:
    """Word 1-2 gram TF-IDF + logistic regression on train+validation; C by 3-fold CV on those rows.

    Validation is folded back in because C is chosen by cross-validation, so the model sees the whole
    original train split. The vectorizer is fitted once on all of it: its vocabulary and IDF use no labels.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    train = pd.concat([frames[s] for s in ("train", "validation") if s in frames], ignore_index=True)
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    features = vectorizer.fit_transform(train["text"])
    start = time.perf_counter()
    clf = logistic_cv(features, train["label"].to_numpy(int), movie_groups(train), seed, Cs)
    extra = {"train_size": len(train), "n_features": len(vectorizer.vocabulary_), **cv_report(clf),
             "cv_seconds": round(time.perf_counter() - start, 1),
             "vectorizer": "word 1-2 grams, sublinear tf, min_df 2"}

    def score(frame: pd.DataFrame) -> dict[str, Scores]:
        features = vectorizer.transform(frame["text"])
        return {"tfidf-lr": Scores(class_probabilities(clf, features, labels.n), "classical")}

    # what a deployment keeps: the vectorizer and the weights, not the cross-validation paths
    size_mb = (len(pickle.dumps(vectorizer)) + clf.coef_.nbytes + clf.intercept_.nbytes) / 1e6
    return Baseline("tfidf", score, size_mb, extra)


# ---------------------------------------------------------------- VADER lexicon


def vader_scale(labels: LabelScheme) -> str | None:
    """"binary" for negative/positive classes, "three" for negative/neutral/positive, None for anything else."""
    keys = [name.strip().lower() for name in labels.names]
    negative, neutral, positive = SCALES[1]
    if labels.binary and keys[0] in negative | NEGATIVE_WORDS and keys[1] in positive | POSITIVE_WORDS:
        return "binary"
    if labels.n == 3 and keys[0] in negative and keys[1] in neutral and keys[2] in positive:
        return "three"
    return None


def vader_scores(compound: np.ndarray, scale: str) -> Scores:
    """Binary: P(positive) = (c + 1) / 2, positive when c >= 0.05. Three classes: softmax([-c, 0.05, c] / 0.1)
    (monotone in c, for the ranking metrics), the decision the neutral band |c| < 0.05."""
    extra = {"compound_threshold": VADER_THRESHOLD, "neutral_share": float((np.abs(compound) < VADER_THRESHOLD).mean())}
    if scale == "binary":
        p = (compound + 1) / 2
        return Scores(np.stack([1 - p, p], 1), "lexicon", (compound >= VADER_THRESHOLD).astype(int),
                      {**extra, "prob_note": "P(positive) is (compound + 1) / 2"})
    from ..core.metrics import softmax

    scores = np.stack([-compound, np.full_like(compound, VADER_THRESHOLD), compound], 1)
    pred = np.where(compound >= VADER_THRESHOLD, 2, np.where(compound <= -VADER_THRESHOLD, 0, 1))
    return Scores(softmax(scores, VADER_TEMPERATURE), "lexicon", pred,
                  {**extra, "prob_note": f"softmax([-c, {VADER_THRESHOLD}, c] / {VADER_TEMPERATURE}); "
                                         "the decision is the neutral band"})


def fit_vader(frames: dict[str, pd.DataFrame], labels: LabelScheme, **_) -> Baseline:
    """VADER's compound score with the authors' standard threshold 0.05 (binary, or a neutral band for three)."""
    scale = vader_scale(labels)
    if scale is None:
        return not_applicable("vader", f"VADER scores polarity, which does not map onto the classes "
                                       f"{list(labels.names)} (it needs negative/positive or "
                                       "negative/neutral/positive)")
    from vaderSentiment import vaderSentiment

    analyzer = vaderSentiment.SentimentIntensityAnalyzer()
    lexicon = Path(vaderSentiment.__file__).with_name("vader_lexicon.txt")

    def score(frame: pd.DataFrame) -> dict[str, Scores]:
        compound = np.array([analyzer.polarity_scores(t)["compound"] for t in frame["text"]], dtype=float)
        return {"vader": vader_scores(compound, scale)}

    size_mb = lexicon.stat().st_size / 1e6 if lexicon.exists() else 0.0
    return Baseline("vader", score, size_mb, {"lexicon": "vaderSentiment", "scale": scale})


# ---------------------------------------------------------------- base encoder before fine-tuning


def descriptions_for(labels: LabelScheme) -> tuple[str, ...]:
    """One description per class: the movie-review pair for binary sentiment, "a {name} text" otherwise."""
    if labels.names == ("negative", "positive"):
        return LABEL_DESCRIPTIONS
    return tuple(f"a {name} text" for name in labels.names)


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def fit_base(frames: dict[str, pd.DataFrame], labels: LabelScheme, model: str | None = None,
             probe_per_class: int | None = 2000, descriptions: tuple[str, ...] | None = None, batch_size: int = 32,
             max_length: int | None = None, seed: int = 42, precision: str = "auto", runtime: Runtime | None = None,
             trust_remote_code: bool = False, **_) -> Baseline:
    """Base encoder: zero-shot by similarity to class descriptions, and a linear probe on frozen embeddings."""
    from transformers import AutoModel

    from ..core.metrics import softmax
    from ..data import sample_per_class
    from ..models.loading import default_model, model_id

    descriptions = tuple(descriptions or descriptions_for(labels))
    if len(descriptions) != labels.n:
        raise SentituneError(f"base descriptions: {len(descriptions)} given for the {labels.n} classes "
                             f"{list(labels.names)}; give one per class, in class order.")
    model = model or default_model()
    net = Network.load(model, AutoModel, runtime or Runtime.resolve(precision), "--base-model", trust_remote_code,
                       max_length, frames["train"]["text"], batch_size=batch_size)

    def embed(texts: list[str]) -> np.ndarray:
        return normalize(net.rows(texts, mean_pool))

    class_vectors = embed(list(descriptions))
    train = sample_per_class(frames["train"], probe_per_class, seed)
    start = time.perf_counter()
    train_features = embed(train["text"].tolist())
    embed_rate = len(train) / max(time.perf_counter() - start, 1e-9)
    probe = logistic_cv(train_features, train["label"].to_numpy(int), movie_groups(train), seed)

    def score(frame: pd.DataFrame) -> dict[str, Scores]:
        features = embed(frame["text"].tolist())
        zero_shot = softmax(features @ class_vectors.T, ZERO_SHOT_TEMPERATURE)
        return {
            "base-zero-shot": Scores(zero_shot, "zero-shot", extra={"descriptions": list(descriptions),
                                                                    "temperature": ZERO_SHOT_TEMPERATURE}),
            "base-probe": Scores(class_probabilities(probe, features, labels.n), "linear-probe",
                                 extra={"probe_train_size": len(train), **cv_report(probe)}),
        }

    extra = {"model": model_id(model), **net.describe(), "pooling": "mean over attention mask",
             "train_embed_examples_per_s": round(embed_rate, 2)}
    return Baseline("base", score, parameter_mb(net.model), extra)


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


def star_mapping(stars: np.ndarray, k: int) -> np.ndarray | None:
    """(stars, K) 0/1 matrix that sums the model's star probabilities into the task's classes (lowest first):
    one star per class when the counts agree (native), below / at / above the middle star for three classes;
    None when neither fits."""
    if k == len(stars):
        return np.eye(k)[np.argsort(np.argsort(stars))]
    middle = (stars.min() + stars.max()) / 2
    if k == 3 and middle in stars:
        return np.eye(3)[np.where(stars < middle, 0, np.where(stars == middle, 1, 2))]
    return None


def expected_stars(probs: np.ndarray, stars: np.ndarray) -> np.ndarray:
    """Expected star value under each row's softmax."""
    return probs @ stars


def argmax_polarity(probs: np.ndarray, stars: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hard 0/1 decision from the most likely star, and the mask of middle-star (neutral) rows.

    Stars below the middle are negative, above it positive. A neutral row gets the opposite of its label,
    i.e. it is counted as wrong in every metric (binary data has no neutral class to give it).
    """
    middle = (stars.min() + stars.max()) / 2
    top = stars[probs.argmax(1)]
    neutral = top == middle
    return np.where(neutral, 1 - labels, (top > middle).astype(int)).astype(int), neutral


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


def star_facts(probs: np.ndarray, stars: np.ndarray, frame: pd.DataFrame) -> dict:
    """What every star entry records: mean expected stars and, with ratings, their rank correlation."""
    expected = expected_stars(probs, stars)
    facts = {"mean_expected_stars": float(expected.mean())}
    if "rating" in frame.columns:
        rated = frame["rating"].to_numpy() > 0
        facts["spearman_expected_vs_rating"] = spearman(expected[rated], frame["rating"].to_numpy()[rated])
    return facts


def one_hot(pred: np.ndarray, k: int = 2) -> np.ndarray:
    return np.eye(k)[np.asarray(pred, int)]


def binary_star_scores(probs: np.ndarray, stars: np.ndarray, frame: pd.DataFrame, tuned: float,
                       default: float) -> dict[str, Scores]:
    """The three binary entries: hard argmax (probabilities = the 0/1 decision), and expected stars rescaled to
    [0, 1] as P(positive) with the default and the validation-tuned threshold as the decision."""
    labels = frame["label"].to_numpy().astype(int)
    expected = expected_stars(probs, stars)
    lo, hi = stars.min(), stars.max()
    hard, neutral = argmax_polarity(probs, stars, labels)
    shared = {**star_facts(probs, stars, frame), "neutral_share": float(neutral.mean())}
    scaled = (expected - lo) / (hi - lo)
    expected_probs = np.stack([1 - scaled, scaled], 1)
    return {
        "star-argmax": Scores(one_hot(hard), "zero-shot", hard,
                              {**shared, "mapping": "argmax star; middle star counted wrong",
                               "prob_note": "probabilities are the hard 0/1 decision"}),
        "star-expected": Scores(expected_probs, "zero-shot", (expected >= default).astype(int),
                                {**shared, "mapping": "expected stars >= threshold", "star_threshold": default}),
        "star-expected-val": Scores(expected_probs, "zero-shot", (expected >= tuned).astype(int),
                                    {**shared, "mapping": "expected stars >= threshold best on validation",
                                     "star_threshold": tuned}),
    }


def mapped_star_scores(probs: np.ndarray, stars: np.ndarray, mapping: np.ndarray,
                       frame: pd.DataFrame) -> dict[str, Scores]:
    """The one N-class entry: star probabilities summed into classes, argmax decision."""
    native = mapping.shape[0] == mapping.shape[1]
    how = "native: one star per class" if native else "stars below / at / above the middle"
    return {"star": Scores(probs @ mapping, "zero-shot", extra={**star_facts(probs, stars, frame), "mapping": how})}


def validation_threshold(net: Network, frames: dict[str, pd.DataFrame], stars: np.ndarray, default: float) -> dict:
    """The binary expected-star threshold best on validation and its accuracy there (the default without validation)."""
    if "validation" not in frames:
        return {"validation_best_threshold": default, "validation_accuracy_at_best": None}
    validation = frames["validation"]
    expected = expected_stars(class_rows(net.rows(validation["text"].tolist(), softmax_logits)), stars)
    labels = validation["label"].to_numpy(int)
    tuned = best_threshold(expected, labels, default)
    return {"validation_best_threshold": tuned,
            "validation_accuracy_at_best": float(((expected >= tuned) == labels).mean())}


def fit_star(frames: dict[str, pd.DataFrame], labels: LabelScheme, model: str = STAR_MODEL,
             threshold: float | None = None, batch_size: int = 16, max_length: int | None = None,
             precision: str = "auto", runtime: Runtime | None = None, trust_remote_code: bool = False, **_) -> Baseline:
    """Star-rating model, zero-shot: native or mapped onto the task's classes (binary: three threshold variants)."""
    from transformers import AutoModelForSequenceClassification

    from ..models.loading import load_config, model_id

    id2label = load_config(model, trust_remote_code, "--star-model").id2label
    stars = star_values(id2label)
    if stars is None:
        raise SentituneError(f"--star-model {model}: labels {list(id2label.values())} are not star ratings "
                             "('1 star'..'5 stars'); use a star-rating model.")
    mapping = None if labels.binary else star_mapping(stars, labels.n)
    if not labels.binary and mapping is None:
        return not_applicable("star", f"{len(stars)} star ratings map onto two, three or {len(stars)} classes, "
                                      f"not the {labels.n} classes {list(labels.names)}")
    net = Network.load(model, AutoModelForSequenceClassification, runtime or Runtime.resolve(precision), "--star-model",
                       trust_remote_code, max_length, frames["train"]["text"], batch_size=batch_size)
    default = threshold if threshold is not None else float((stars.min() + stars.max()) / 2)
    extra = {"model": model_id(model), "stars": stars.tolist(), **net.describe()}
    if labels.binary:
        extra |= validation_threshold(net, frames, stars, default)

    def score(frame: pd.DataFrame) -> dict[str, Scores]:
        probs = class_rows(net.rows(frame["text"].tolist(), softmax_logits))
        if mapping is not None:
            return mapped_star_scores(probs, stars, mapping, frame)
        return binary_star_scores(probs, stars, frame, extra["validation_best_threshold"], default)

    return Baseline("star", score, parameter_mb(net.model), extra)


FAMILIES: dict[str, Callable[..., Baseline]] = {"majority": fit_majority, "star": fit_star, "base": fit_base,
                                                 "tfidf": fit_tfidf, "vader": fit_vader}
