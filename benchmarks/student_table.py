"""A teacher and its distilled students on the full IMDB test set, at 256 and 128 tokens: the curve a user picks from.

    flock /tmp/sentitune-cpu.lock python benchmarks/student_table.py TEACHER_RUN STUDENT_RUN [...] \
        [--lengths 256,128] [--backend openvino] [--out table.json]

Each run's model is scored on all 25,000 test reviews (head+tail at each length; the models were trained at 256)
with one backend (a temporary copy of the model folder is exported when the backend needs it). Prints accuracy
with its 95% interval, the difference from the teacher at 256 tokens with McNemar's exact p on the same reviews,
parameters, the size of the backend's files and the reviews/s of the whole pass (tokenisation included; the
ratios to `pipeline()` come from `benchmarks/inference_peers.py --student`, A B A B on 2,000 reviews).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def exported(model_dir: Path, backend: str) -> Path:
    """The model folder itself when it can run `backend`, else a temporary exported copy."""
    from sentitune.models.exported import exported_backends

    if backend == "torch" or backend in exported_backends(model_dir):
        return model_dir
    return common.exported_copy(model_dir, onnx=backend != "openvino", openvino=backend == "openvino")


def main() -> None:
    from sentitune.core.metrics import mcnemar, wilson_interval
    from sentitune.inference.predict import SentimentModel
    from sentitune.run.folder import RunFolder
    from sentitune.training.distill import parameter_count

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="the teacher run first, then its students")
    parser.add_argument("--lengths", default="256,128", help="tokens per review, comma-separated")
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    print(common.machine(), flush=True)
    test = RunFolder(args.runs[0]).predictions().query("split == 'test'").sort_values("idx")  # the teacher's reviews
    texts, labels = test["text"].tolist(), test["label"].to_numpy()
    rows, reference = [], None
    for run in args.runs:
        folder = exported(RunFolder(run).model_dir, args.backend)
        model = SentimentModel.from_pretrained(folder, backend=args.backend)
        for length in [int(n) for n in args.lengths.split(",")]:
            start = time.perf_counter()
            predicted = model.score(texts, max_length=length).probs.argmax(1)
            seconds = time.perf_counter() - start
            right = predicted == labels
            reference = right if reference is None else reference
            paired = mcnemar(reference, right)
            low, high = wilson_interval(int(right.sum()), len(right))
            rows.append({"run": run.name, "tokens": length, "n": len(right), "accuracy": float(right.mean()),
                         "ci95": [low, high], "delta_pts": 100 * (right.mean() - reference.mean()),
                         "mcnemar_p": paired["p_value"], "parameters": parameter_count(folder),
                         "model_mb": round(common.files_mb(common.backend_files(folder, args.backend)), 1),
                         "reviews_per_s": len(right) / seconds})
            print(json.dumps(rows[-1]), flush=True)
    print(common.markdown_table(rows, ["run", "tokens", "accuracy", "delta_pts", "mcnemar_p", "parameters",
                                       "model_mb", "reviews_per_s"]))
    if args.out:
        args.out.write_text(json.dumps({"machine": common.machine(), "backend": args.backend, "rows": rows},
                                       indent=2))


if __name__ == "__main__":
    main()
