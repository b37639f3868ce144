"""Inference-time accuracy levers on a finished run, on its own test examples.

Compares, on exactly the run's test set: the run's own predictions (head+tail at the trained length),
window averaging over the whole review, the exported ONNX graphs (`--backends`), and, when a TF-IDF baseline folder scored the same examples,
an average of the two models' probabilities (an ensemble, reported as such: it is not the model alone).

    python benchmarks/accuracy_levers.py runs/cpu-full --tfidf runs/baselines/imdb-test-full/tfidf-lr
    python benchmarks/accuracy_levers.py runs/cpu-full --backends onnx-int8 --no-windows   # int8's accuracy cost

Prints one row per variant (accuracy, 95% CI, F1, wall time) and the differences last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sentitune.evaluate import classification_metrics, mcnemar
from sentitune.export import export_onnx, onnx_path
from sentitune.predict import SentimentModel


def row(name: str, labels: np.ndarray, prob: np.ndarray, seconds: float | None) -> dict:
    m = classification_metrics(labels, prob)
    return {"variant": name, "accuracy": m["accuracy"], "ci95": m["accuracy_ci95"], "f1": m["f1"], "seconds": seconds,
            "correct": (prob >= 0.5) == labels.astype(bool)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--tfidf", type=Path, help="A baseline folder (baseline.json + predictions.parquet) scored on the same test examples.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-windows", action="store_true", help="Skip window averaging (it costs a full inference pass).")
    parser.add_argument("--backends", nargs="*", default=[], choices=["onnx", "onnx-int8"],
                        help="Also predict with these exported graphs (exported into RUN/model/onnx/ when missing).")
    parser.add_argument("--out", type=Path, help="Write the rows as JSON here.")
    args = parser.parse_args()

    test = pd.read_parquet(args.run / "predictions.parquet").query("split == 'test'").reset_index(drop=True)
    labels = test["label"].to_numpy()
    rows = [row("head+tail (as trained)", labels, test["prob"].to_numpy(), None)]
    windowed = None
    if not args.no_windows:
        model = SentimentModel.from_pretrained(args.run / "model")
        started = time.perf_counter()
        windowed, _, _ = model.predict_proba(test["text"].tolist(), args.batch_size, windows=True, clean=False)
        rows.append(row("window average", labels, windowed, time.perf_counter() - started))
    for backend in args.backends:
        if not onnx_path(args.run / "model", backend).is_file():
            export_onnx(args.run / "model")
        model = SentimentModel.from_pretrained(args.run / "model", backend=backend)
        started = time.perf_counter()
        prob, _, _ = model.predict_proba(test["text"].tolist(), clean=False)
        rows.append(row(f"{backend} backend (head+tail)", labels, prob, time.perf_counter() - started))
    if args.tfidf:
        baseline = pd.read_parquet(args.tfidf / "predictions.parquet").set_index("idx").loc[test["idx"]]
        rows.append(row("tfidf-lr alone", labels, baseline["prob"].to_numpy(), None))
        rows.append(row("ensemble: mean(model, tfidf-lr)", labels, (test["prob"].to_numpy() + baseline["prob"].to_numpy()) / 2, None))
        if windowed is not None:
            rows.append(row("ensemble: mean(window model, tfidf-lr)", labels, (windowed + baseline["prob"].to_numpy()) / 2, None))
    reference = rows[0]["correct"]
    print(f"{args.run}: {len(test)} test examples")
    print(f"{'variant':<42} {'accuracy':>9} {'95% CI':>17} {'F1':>7} {'seconds':>8} {'vs as-trained':>14} {'McNemar p':>10}")
    for r in rows:
        p = f"{mcnemar(r['correct'], reference)['p_value']:.2g}" if r is not rows[0] else "-"
        ci = f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]"
        secs = f"{r['seconds']:.0f}" if r["seconds"] else "-"
        delta = f"{100 * (r['accuracy'] - rows[0]['accuracy']):+.2f} pts"
        print(f"{r['variant']:<42} {r['accuracy']:>9.4f} {ci:>17} {r['f1']:>7.4f} {secs:>8} {delta:>14} {p:>10}")
    if args.out:
        args.out.write_text(json.dumps([{k: v for k, v in r.items() if k != "correct"} for r in rows], indent=2))


if __name__ == "__main__":
    main()
