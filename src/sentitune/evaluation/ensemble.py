"""A fine-tuned run averaged with a baseline scored on the same test examples (the main job's `--ensemble tfidf`):
one more result entry for the comparison, of its own kind, so it is reported as its own row and never stands in for
the single model or for the best baseline.

The two members' class probabilities are averaged with equal weights, the rule the distillation teacher uses; on
IMDB the mean of a fine-tuned MiniLM's and TF-IDF + LR's probabilities scored 1-2 points above either alone
(docs/results.md). Nothing is fitted on the test examples.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import SentituneError
from ..core.labels import LabelScheme
from ..core.metrics import classification_metrics
from ..run.folder import class_columns, prediction_columns, read_baseline
from .compare import ENSEMBLE, run_entry

ENSEMBLES = {"tfidf": "tfidf-lr"}  # --ensemble value: the baseline entry it averages the run with


def ensemble_entry(run_dir: str | Path, baseline_dir: str | Path) -> dict:
    """The mean of the run's and the baseline's test probabilities, paired by `idx`, as a result entry."""
    run, baseline = run_entry(run_dir), read_baseline(baseline_dir)
    if run["examples"].get("fingerprint") != baseline["examples"].get("fingerprint"):
        raise SentituneError(f"{baseline_dir}: scored other test examples than {run_dir}; an ensemble needs both "
                             "on the same ones (run both in one `sentitune run`).")
    paired = run["predictions"].merge(baseline["predictions"], on=["idx", "label"], suffixes=("", "_b"))
    probs = (paired[class_columns(paired)].to_numpy(float) + paired[[f"{c}_b" for c in class_columns(paired)]]
             .to_numpy(float)) / 2
    labels = LabelScheme.from_dict(run["labels"])
    rates = [e["examples_per_s"] for e in (run, baseline)]
    sizes = [e["model_size_mb"] for e in (run, baseline)]
    return {
        "name": f"{run['name']}+{baseline['name']}",
        "kind": ENSEMBLE,
        "family": ENSEMBLE,
        "labels": run["labels"],
        "metrics": classification_metrics(paired["label"].to_numpy(int), probs, labels.names, labels.ordinal),
        "examples": run["examples"],
        # one text goes through both members, one after the other
        "examples_per_s": round(1 / sum(1 / r for r in rates), 2) if all(rates) else None,
        "model_size_mb": round(sum(sizes), 2) if all(s is not None for s in sizes) else None,
        "extra": {"members": [run["name"], baseline["name"]], "weights": [0.5, 0.5],
                  "rule": "mean of the members' class probabilities"},
        "predictions": paired[["idx", "label"]].assign(**prediction_columns(probs)).reset_index(drop=True),
    }


def ensemble_baseline(name: str) -> str:
    """The baseline entry `--ensemble name` averages the run with; one line naming the choices otherwise."""
    if name not in ENSEMBLES:
        raise SentituneError(f"--ensemble {name}: use one of {', '.join(ENSEMBLES)} (or none).")
    return ENSEMBLES[name]
