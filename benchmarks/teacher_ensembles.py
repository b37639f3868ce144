"""How good a teacher each run makes: its test accuracy alone and as the mean of its and TF-IDF + LR's probabilities.

`sentitune distill RUN --teacher-ensemble tfidf` teaches with exactly that mean (TF-IDF + LR fitted on the run's
train split); this scores it on the run's test split, with each run's mean top probability (how sharp its soft
labels are). All runs must share the first run's data and splits (runs of one preset on one source do).

    python benchmarks/teacher_ensembles.py /work/exp-runs/levers/runs/{a,b2,e,eb2}
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="Finished run folders on the same data.")
    args = parser.parse_args()

    from sentitune.data import prepare_splits
    from sentitune.evaluation.baselines import as_frame, fit_tfidf
    from sentitune.run.folder import RunFolder

    first = RunFolder(args.runs[0])
    splits, _ = prepare_splits(first.config().data)
    test, truth = splits["test"], np.array(splits["test"]["label"])
    words = fit_tfidf({"train": as_frame(splits["train"])}, first.labels()).score(
        pd.DataFrame({"text": list(test["text"])}))["tfidf-lr"].probs
    print(machine())
    print(f"| run | alone | mean with TF-IDF + LR | mean top probability |\n|---|---|---|---|\n"
          f"| TF-IDF + LR | {(words.argmax(1) == truth).mean():.4f} | | {words.max(1).mean():.4f} |")
    for path in args.runs:
        preds = RunFolder(path).predictions().query("split == 'test'").sort_values("idx")
        if len(preds) != len(truth) or (preds["label"].to_numpy() != truth).any():
            sys.exit(f"benchmarks/teacher_ensembles.py: {path} was scored on other test examples than {args.runs[0]}.")
        probs = preds[[f"prob_{k}" for k in range(words.shape[1])]].to_numpy()
        print(f"| {path.name} | {(probs.argmax(1) == truth).mean():.4f} | "
              f"{(((probs + words) / 2).argmax(1) == truth).mean():.4f} | {probs.max(1).mean():.4f} |")


if __name__ == "__main__":
    main()
