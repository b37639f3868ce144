"""Evaluation stage: metrics, calibration, slices and error analysis of a run, for any number of classes.

`analyze(frame, ...)` turns one scored split (a predictions table) into the evaluation dict; `evaluate_run`
scores a run folder (its own test predictions, or another dataset with `--data`) and writes evaluation.json
and plots through the RunFolder; when the run has its model weights, the most confident errors also get word
attributions (`sentitune.inference.explain`). The statistics themselves live in `sentitune.core.metrics`.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import SentituneError
from ..core.labels import LabelScheme
from ..core.metrics import calibration_bins, classification_metrics, fit_temperature, softmax, wilson_interval
from ..run.folder import RunFolder, logits, prediction_columns, probabilities

NEGATION = re.compile(r"\b(?:not|no|never|nothing|nobody|none|neither|nor|nowhere|hardly|barely|without)\b|n't\b",
                      re.IGNORECASE)
ELLIPSIS = " [...] "  # joins the start and the end of a long text's excerpt
# Integrated Gradients path points per explained error: few, so the main job stays fast on a CPU (a larger
# convergence delta is the price; it is recorded with each error)
EXPLAIN_STEPS = 16


# ---------------------------------------------------------------- slices and error analysis


def has_negation(texts) -> np.ndarray:
    """True where a text contains a negation word (not, never, n't, ...)."""
    return np.array([bool(NEGATION.search(t or "")) for t in texts], dtype=bool)


def length_buckets(n_tokens: np.ndarray, max_length: int) -> tuple[np.ndarray, list[str]]:
    """Bucket label per example and the bucket order, with edges at max_length/2, max_length and 2x max_length."""
    edges = [max_length // 2, max_length, 2 * max_length]
    names = [f"<= {edges[0]}", f"{edges[0] + 1}-{edges[1]}", f"{edges[1] + 1}-{edges[2]}", f"> {edges[2]}"]
    which = np.searchsorted(edges, n_tokens, side="left")
    return np.array(names, dtype=object)[which], names


def slice_rows(correct: np.ndarray, groups: np.ndarray, order: list) -> list[dict]:
    """Accuracy with its Wilson interval per group, in `order`, skipping empty groups."""
    rows = []
    for group in order:
        mask = groups == group
        n = int(mask.sum())
        if n:
            k = int(correct[mask].sum())
            rows.append({"group": str(group), "n": n, "accuracy": k / n, "accuracy_ci95": wilson_interval(k, n)})
    return rows


def slices(frame: pd.DataFrame, max_length: int, labels: LabelScheme | None = None) -> dict[str, list[dict]]:
    """Accuracy by true class, text length (tokens), true star rating, truncation and negation, where known."""
    correct = frame["pred"].to_numpy(int) == frame["label"].to_numpy(int)
    out: dict[str, list[dict]] = {}
    if labels is not None and not labels.binary:
        names = np.asarray(labels.names, dtype=object)[frame["label"].to_numpy(int)]
        out["class"] = slice_rows(correct, names, list(labels.names))
    if "n_tokens" in frame:
        groups, order = length_buckets(frame["n_tokens"].to_numpy(int), max_length)
        out["length"] = slice_rows(correct, groups, order)
    if "rating" in frame and (frame["rating"] > 0).any():
        ratings = frame["rating"].fillna(-1).to_numpy(int)
        out["rating"] = slice_rows(correct, ratings, sorted(set(ratings) - {-1}))
    if "truncated" in frame:
        truncated = np.where(frame["truncated"].to_numpy(bool), "truncated", "not truncated")
        out["truncation"] = slice_rows(correct, truncated, ["not truncated", "truncated"])
    if "text" in frame:
        negation = np.where(has_negation(frame["text"]), "with negation", "without negation")
        out["negation"] = slice_rows(correct, negation, ["without negation", "with negation"])
    return out


def weakest_slice(slice_tables: dict[str, list[dict]], min_n: int = 20) -> dict | None:
    """The group with the lowest accuracy among groups of at least `min_n` examples:
    {slice, group, n, accuracy, ...}."""
    rows = [{"slice": name, **row} for name, table in slice_tables.items() for row in table if row["n"] >= min_n]
    return min(rows, key=lambda r: r["accuracy"]) if rows else None


def excerpt_pieces(text: str, chars: int = 400) -> list[tuple[int, int]]:
    """The (start, end) parts of `text` its excerpt keeps: all of it, or its start and its end."""
    if len(text) <= chars:
        return [(0, len(text))]
    head = chars * 2 // 3
    tail = len(text) - (chars - head)
    return [(0, len(text[:head].rstrip())), (len(text) - len(text[tail:].lstrip()), len(text))]


def excerpt(text: str, chars: int = 400) -> str:
    """The start and end of a long text joined by an ellipsis (reviews often conclude at the end)."""
    text = text or ""
    return ELLIPSIS.join(text[start:end] for start, end in excerpt_pieces(text, chars))


def excerpt_words(words: list[dict], text: str, chars: int = 400) -> list[dict]:
    """The words ({word, start, end, ...} with spans into `text`) that `excerpt(text)` keeps, spans moved into it."""
    kept, offset = [], 0
    for start, end in excerpt_pieces(text, chars):
        kept += [{**w, "start": w["start"] - start + offset, "end": w["end"] - start + offset}
                 for w in words if start <= w["start"] and w["end"] <= end]
        offset += end - start + len(ELLIPSIS)
    return kept


def example_rows(frame: pd.DataFrame, names, excerpt_chars: int = 400) -> list[dict]:
    """JSON-safe rows for the error tables: idx, true and predicted class, confidence, every class's probability."""
    probs = probabilities(frame) if len(frame) else np.zeros((0, len(names)))
    rows = []
    for i, row in enumerate(frame.itertuples(index=False)):
        rows.append({"idx": int(getattr(row, "idx", -1)), "label": names[int(row.label)], "pred": names[int(row.pred)],
                     "confidence": float(probs[i].max()), "probs": {n: float(p) for n, p in zip(names, probs[i])},
                     "rating": int(getattr(row, "rating", -1)), "n_tokens": int(getattr(row, "n_tokens", -1)),
                     "truncated": bool(getattr(row, "truncated", False)),
                     "text": excerpt(str(getattr(row, "text", "")), excerpt_chars)})
    return rows


def confident_errors(frame: pd.DataFrame, k: int, top_n: int) -> pd.DataFrame:
    """The `top_n` wrong predictions on true class `k`, most confident first."""
    wrong = frame[frame["pred"] != frame["label"]]
    return wrong[wrong["label"] == k].sort_values("confidence", ascending=False).head(top_n)


def error_examples(frame: pd.DataFrame, names, top_n: int = 10) -> dict:
    """The most confident errors per true class, the least sure predictions, and error counts per true class."""
    wrong = frame[frame["pred"] != frame["label"]]
    confident = {name: example_rows(confident_errors(frame, k, top_n), names) for k, name in enumerate(names)}
    least_sure = frame.sort_values("confidence", kind="stable").head(top_n)
    return {"confident": confident, "least_sure": example_rows(least_sure, names),
            "n_errors": {name: int((wrong["label"] == k).sum()) for k, name in enumerate(names)}}


# ---------------------------------------------------------------- explanations of the most confident errors


def unexplainable(run: RunFolder, frame: pd.DataFrame, n: int) -> str | None:
    """Why no error can be explained (None when they can)."""
    if n <= 0:
        return "not requested (--explain-errors 0)"
    if not run.has_weights():
        return f"no model weights in the run's {run.model_dir.name}/ folder"
    if "text" not in frame:
        return "the predictions have no texts"
    return None


def errors_to_explain(frame: pd.DataFrame, errors: dict, names, top_n: int, n: int) -> list[tuple[dict, str]]:
    """The `n` most confident of the errors listed in `errors`, each as (its row there, its full text)."""
    pairs = [(row, str(text)) for k, name in enumerate(names)
             for row, text in zip(errors["confident"][name], confident_errors(frame, k, top_n)["text"])]
    return sorted(pairs, key=lambda pair: -pair[0]["confidence"])[:n]


def explained_row(model, row: dict, text: str, labels: LabelScheme, steps: int) -> dict:
    """What an error's row gains: `words` ({word, start, end, score}, spans into its excerpt `text`), `target`
    (its predicted class, the one explained) and `delta` (the convergence delta, in probability units)."""
    from ..inference.explain import explain

    # the saved model may spell the classes otherwise (LABEL_0, ...): the run's class order is the model's
    target = model.labels.names[labels.names.index(row["pred"])]
    found = explain(model, text, target=target, steps=steps).to_dict()
    return {"words": excerpt_words(found["words"], text), "target": row["pred"], "delta": round(found["delta"], 6)}


def error_explanations(run: RunFolder, frame: pd.DataFrame, evaluation: dict, labels: LabelScheme, top_n: int,
                       n: int, steps: int = EXPLAIN_STEPS) -> dict:
    """Word attributions (torch backend) for the `n` most confident errors, added to their rows in
    `evaluation["errors"]`; returns {method, steps, requested, explained, seconds, skipped: why none were}."""
    summary = {"method": "Integrated gradients (Captum) of the predicted class's probability", "steps": steps,
               "requested": n, "explained": 0, "seconds": None, "skipped": unexplainable(run, frame, n)}
    pairs = [] if summary["skipped"] else errors_to_explain(frame, evaluation["errors"], labels.names, top_n, n)
    if not pairs:
        return summary | {"skipped": summary["skipped"] or "no errors to explain"}
    from ..inference.predict import SentimentModel

    started = time.perf_counter()
    try:
        model = SentimentModel.from_pretrained(run.model_dir, backend="torch")
        if model.labels.n != labels.n:
            raise SentituneError(f"the saved model has {model.labels.n} classes, the run {labels.n}")
        extra = [explained_row(model, row, text, labels, steps) for row, text in pairs]
    except SentituneError as exc:
        return summary | {"skipped": str(exc)}
    for (row, _), keys in zip(pairs, extra):
        row.update(keys)
    seconds = time.perf_counter() - started
    print(f"explained the {len(pairs)} most confident errors in {seconds:.1f} s ({steps} steps each)",
          file=sys.stderr)
    return summary | {"explained": len(pairs), "seconds": round(seconds, 3)}


# ---------------------------------------------------------------- calibration


def temperature_section(validation: pd.DataFrame, evaluated: pd.DataFrame, labels: LabelScheme) -> dict | None:
    """Temperature fitted on validation and the evaluated split's metrics before/after (None without validation)."""
    if validation is None or validation.empty or validation["label"].nunique() < 2:
        return None
    t = fit_temperature(validation["label"].to_numpy(int), logits(validation))
    y = evaluated["label"].to_numpy(int)
    before, after = probabilities(evaluated), softmax(logits(evaluated), t)
    return {"value": t, "fitted_on": "validation", "n_fit": int(len(validation)),
            "metrics_before": classification_metrics(y, before, labels.names, labels.ordinal, bootstrap=0),
            "metrics_after": classification_metrics(y, after, labels.names, labels.ordinal, bootstrap=0),
            "bins_after": calibration_bins(y, after)}


def analyze(frame: pd.DataFrame, labels: LabelScheme, max_length: int, validation: pd.DataFrame | None = None,
            top_n: int = 10, temperature: bool = True) -> dict:
    """Everything the report needs from one scored split: metrics, calibration, temperature, slices, errors."""
    y, probs = frame["label"].to_numpy(int), probabilities(frame)
    return {"n": int(len(frame)), "labels": labels.to_dict(), "max_length": max_length,
            "metrics": classification_metrics(y, probs, labels.names, labels.ordinal, pred=frame["pred"].to_numpy(int)),
            "calibration_bins": calibration_bins(y, probs, frame["pred"].to_numpy(int)),
            "temperature": temperature_section(validation, frame, labels) if temperature else None,
            "slices": slices(frame, max_length, labels),
            "errors": error_examples(frame, labels.names, top_n)}


# ---------------------------------------------------------------- a whole run


def split_rows(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split (all rows when the frame has no split column)."""
    return frame[frame["split"] == split].reset_index(drop=True) if "split" in frame else frame.reset_index(drop=True)


def dataset_slug(source: str) -> str:
    """A folder name for a dataset source: its last path part or Hub id, in safe characters."""
    name = Path(str(source).rstrip("/")).name or "data"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "data"


def predict_on_data(run: RunFolder, data_cfg, split: str = "test", backend: str = "torch",
                    windows: bool = False) -> tuple[pd.DataFrame, dict, LabelScheme]:
    """Predict a whole split of another labelled dataset with the run's saved model: (frame, examples, labels).

    A single-file dataset is scored whole (its rows are the test split), never a carved-out share."""
    from ..data import examples_descriptor, scoring_frame
    from ..inference.predict import SentimentModel

    if not run.model_dir.is_dir():
        raise SentituneError(f"{run.model_dir}: no saved model in the run folder; train it first.")
    model = SentimentModel.from_pretrained(run.model_dir, backend=backend)
    trained = run.labels()
    frame, report = scoring_frame(data_cfg, split)
    labels = LabelScheme.from_dict(report["labels"])
    if labels.names == tuple(str(i) for i in range(trained.n)) or labels.matches(trained):  # ids, or other spellings
        labels = trained
    if labels.names != trained.names:
        raise SentituneError(f"--data {data_cfg.data}: its classes {list(labels.names)} "
                             f"differ from the {trained.n} classes the model was fine-tuned on {list(trained.names)}; "
                             "pass --labels to map them in that order.")
    scored = model.score(frame["text"].tolist(), windows=windows, clean=False)
    frame = frame.assign(split=split, **prediction_columns(scored.probs, scored.logits), n_tokens=scored.n_tokens,
                         truncated=scored.n_tokens > model.max_length,
                         rating=frame["rating"] if "rating" in frame else -1)
    return frame, examples_descriptor(frame, split, data_cfg), trained


def evaluate_run(run_dir: str | Path, data_cfg=None, split: str = "test", top_n: int = 10, temperature: bool = True,
                 plots: bool = True, backend: str = "torch", windows: bool = False, explain_errors: int = 5) -> dict:
    """Score a run and write its evaluation.json and plots; returns the evaluation dict.

    Without `data_cfg` the run's own saved predictions are scored. With a `sentitune.data.DataConfig` the saved
    model predicts the whole `split` of that dataset, and the results go to `evaluations/<dataset>[-backend]
    [-windows]/` instead, so the run's own evaluation stays intact. Temperature scaling is always fitted on the
    run's own validation predictions. The `explain_errors` most confident errors get word attributions with the
    run's saved model on torch (whatever `backend` scored them), when the run folder has its weights."""
    from . import plots as plotting

    run = RunFolder(Path(run_dir)).require()
    config, recorded = run.config(), run.metrics()
    predictions = run.predictions()
    validation = split_rows(predictions, "validation") if "split" in predictions else None
    if data_cfg is None:
        frame, labels, out_dir = split_rows(predictions, split), run.labels(), run.path
        examples, source = recorded.get("examples", {}).get(split), config.data.data
    else:
        frame, examples, labels = predict_on_data(run, data_cfg, split, backend, windows)
        source = data_cfg.data
        out_dir = run.evaluation_dir(dataset_slug(source) + ("" if backend == "torch" else f"-{backend}")
                                     + ("-windows" if windows else ""))
        run.write_predictions(frame, at=out_dir)
    if frame.empty:
        raise SentituneError(f"{run.predictions_path}: no rows for split '{split}'; choose validation or test.")
    evaluation = {"run": config.name or run.name, "split": split, "data": source, "examples": examples,
                  **analyze(frame, labels, config.max_length, validation, top_n, temperature)}
    evaluation["matches_metrics_json"] = (matches(evaluation["metrics"], recorded.get(split))
                                          if data_cfg is None else None)
    evaluation["explanations"] = error_explanations(run, frame, evaluation, labels, top_n, explain_errors)
    if plots:
        made = plotting.evaluation_plots(frame, evaluation, Path(out_dir) / "plots", labels)
        if data_cfg is None:
            made |= plotting.training_plots(run.log(), Path(out_dir) / "plots")
        evaluation["plots"] = {name: str(Path(path).relative_to(out_dir)) for name, path in made.items()}
    run.write_evaluation(evaluation, at=out_dir)
    return evaluation


def matches(metrics: dict, recorded: dict | None, tolerance: float = 1e-6) -> bool | None:
    """Whether the recomputed headline numbers equal those recorded at training time (None when none were)."""
    if not recorded:
        return None
    keys = [k for k in ("n", "accuracy", "f1", "f1_macro", "roc_auc")
            if recorded.get(k) is not None and metrics.get(k) is not None]
    return all(abs(float(metrics[k]) - float(recorded[k])) <= tolerance for k in keys)
