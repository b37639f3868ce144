"""Inference-time accuracy levers on a finished run, on its own test examples.

Compares, on exactly the run's test set: the run's own predictions (head+tail at the trained length),
window averaging over the whole review, the exported ONNX graphs (`--backends`), and, when a TF-IDF baseline
folder scored the same examples, an average of the two models' class probabilities (an ensemble, reported as
such: it is not the model alone). Any number of classes; F1 is the positive class's for two, macro F1 above.

    python benchmarks/accuracy_levers.py runs/cpu-full --tfidf runs/baselines/imdb-test-full/tfidf-lr
    python benchmarks/accuracy_levers.py runs/cpu-full --backends onnx-int8 --no-windows   # int8's accuracy cost

Prints the machine, then one row per variant (accuracy, 95% CI, F1, wall time) and the differences last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import numpy as np

from sentitune.core.metrics import classification_metrics, mcnemar
from sentitune.inference.export import export_onnx
from sentitune.inference.predict import SentimentModel
from sentitune.models.exported import onnx_path
from sentitune.run.folder import RunFolder, probabilities, read_predictions


def row(name: str, labels: np.ndarray, probs: np.ndarray, seconds: float | None, names) -> dict:
    """One variant's figures from its (n, K) class probabilities."""
    m = classification_metrics(labels, probs, names, bootstrap=0)
    return {"variant": name, "accuracy": m["accuracy"], "ci95": m["accuracy_ci95"], "f1": m.get("f1", m["f1_macro"]),
            "seconds": seconds, "correct": probs.argmax(1) == labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--tfidf", type=Path,
                        help="A baseline folder (baseline.json + predictions.parquet) scored on the same test "
                             "examples.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-windows", action="store_true",
                        help="Skip window averaging (it costs a full inference pass).")
    parser.add_argument("--backends", nargs="*", default=[], choices=["onnx", "onnx-int8"],
                        help="Also predict with these exported graphs (exported into RUN/model/onnx/ when missing).")
    parser.add_argument("--out", type=Path, help="Write the rows as JSON here.")
    args = parser.parse_args()

    print(common.machine())
    run = RunFolder(args.run)
    names = run.labels().names
    test = run.predictions().query("split == 'test'").reset_index(drop=True)
    labels, texts = test["label"].to_numpy(), test["text"].tolist()
    as_trained = probabilities(test)
    rows = [row("head+tail (as trained)", labels, as_trained, None, names)]
    windowed = None
    if not args.no_windows:
        model = SentimentModel.from_pretrained(run.model_dir)
        started = time.perf_counter()
        windowed = model.score(texts, args.batch_size, windows=True, clean=False).probs
        rows.append(row(f"window average ({model.runtime.precision})", labels, windowed,
                        time.perf_counter() - started, names))
    for backend in args.backends:
        if not onnx_path(run.model_dir, backend).is_file():
            export_onnx(run.model_dir)
        model = SentimentModel.from_pretrained(run.model_dir, backend=backend)
        started = time.perf_counter()
        probs = model.score(texts, clean=False).probs
        rows.append(row(f"{backend} backend (head+tail)", labels, probs, time.perf_counter() - started, names))
    if args.tfidf:
        baseline = read_predictions(args.tfidf / "predictions.parquet").set_index("idx").loc[test["idx"]]
        tfidf = probabilities(baseline)
        rows.append(row("tfidf-lr alone", labels, tfidf, None, names))
        rows.append(row("ensemble: mean(model, tfidf-lr)", labels, (as_trained + tfidf) / 2, None, names))
        if windowed is not None:
            rows.append(row("ensemble: mean(window model, tfidf-lr)", labels, (windowed + tfidf) / 2, None, names))
    reference = rows[0]["correct"]
    print(f"{args.run}: {len(test)} test examples")
    print(f"{'variant':<42} {'accuracy':>9} {'95% CI':>17} {'F1':>7} {'seconds':>8} {'vs as-trained':>14} "
          f"{'McNemar p':>10}")
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
