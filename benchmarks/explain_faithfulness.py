"""Faithfulness of `sentitune explain`: deleting the words Integrated Gradients ranks highest should lower the
predicted class's probability far more than deleting as many random words (the deletion test, as in
"comprehensiveness", DeYoung et al. 2020, ERASER).

    python benchmarks/explain_faithfulness.py --model runs/<run>                 # 500 test reviews, on a GPU
    flock /tmp/sentitune-cpu.lock python benchmarks/explain_faithfulness.py --model runs/<run> --n 50

For `--n` test reviews (a seeded sample of test.parquet): the explanation of each review's predicted class; then,
for k in 1, 3, 5, 10, the review without its k highest-scored words and the review without k random words
the model read (seeded per review), all re-scored in one batch through `SentimentModel.predict_proba`. Reports,
per k, the mean drop in the predicted class's probability for both deletions, their difference, and the share
of reviews where the top-k deletion drops it more than the random one. A review with fewer than k read words
loses all of them either way. One JSON line per k, then a markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import numpy as np
import pandas as pd

from sentitune.inference.explain import DEFAULT_STEPS, Explanation, explain_many, without_words
from sentitune.inference.predict import SentimentModel

KS = (1, 3, 5, 10)


def sampled_reviews(path: Path, n: int, seed: int) -> list[str]:
    frame = pd.read_parquet(path, columns=["text"])
    return frame.sample(n=min(n, len(frame)), random_state=seed)["text"].tolist()


def top_spans(found: Explanation, k: int) -> list[tuple[int, int]]:
    """Spans of the k read words with the highest scores (the strongest evidence for the class explained)."""
    ranked = sorted((i for i, read in enumerate(found.read) if read), key=lambda i: -found.scores[i])
    return [found.spans[i] for i in ranked[:k]]


def random_spans(found: Explanation, k: int, rng: random.Random) -> list[tuple[int, int]]:
    """Spans of k read words drawn at random."""
    readable = [i for i, read in enumerate(found.read) if read]
    return [found.spans[i] for i in rng.sample(readable, min(k, len(readable)))]


def deleted_texts(found: list[Explanation], ks: tuple[int, ...], seed: int) -> tuple[list[str], list[str]]:
    """For each k, then each review: the text without its top-k words, and without k random words."""
    top, rand = [], []
    for k in ks:
        for row, one in enumerate(found):
            top.append(without_words(one.text, top_spans(one, k)))
            rand.append(without_words(one.text, random_spans(one, k, random.Random(seed * 1_000_003 + row * 101 + k))))
    return top, rand


def drops(model: SentimentModel, found: list[Explanation], ks: tuple[int, ...], seed: int,
          batch_size: int | None) -> list[dict]:
    """Per k: mean probability drops of the explained class after top-k and random-k deletions."""
    top, rand = deleted_texts(found, ks, seed)
    probs = model.predict_proba(top + rand, batch_size)
    column = np.array([model.labels.names.index(one.target) for one in found])
    before = np.array([one.probs[one.target] for one in found])
    n, rows = len(found), []
    for j, k in enumerate(ks):
        after_top = probs[j * n:(j + 1) * n][np.arange(n), column]
        after_rand = probs[len(top) + j * n:len(top) + (j + 1) * n][np.arange(n), column]
        top_drop, rand_drop = before - after_top, before - after_rand
        rows.append({"k": k, "n": n, "top_k_drop": round(float(top_drop.mean()), 4),
                     "random_drop": round(float(rand_drop.mean()), 4),
                     "difference": round(float((top_drop - rand_drop).mean()), 4),
                     "top_beats_random": round(float((top_drop > rand_drop).mean()), 4)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| k | reviews | drop, top-k words | drop, k random words | difference | top-k drops more |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['k']} | {r['n']} | {r['top_k_drop']:.4f} | {r['random_drop']:.4f} | {r['difference']:+.4f} | "
              f"{r['top_beats_random']:.1%} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="A run folder or its model/ folder.")
    parser.add_argument("--n", type=int, default=500, help="Test reviews to explain.")
    parser.add_argument("--data", default=str(common.IMDB / "test.parquet"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="Integration steps per explanation.")
    parser.add_argument("--batch-size", type=int, default=4, help="Reviews explained together.")
    parser.add_argument("--internal-batch-size", type=int, default=None,
                        help="Path points per review per forward/backward pass (default: 8 on a CPU, 32 on a GPU).")
    parser.add_argument("--ks", default=",".join(map(str, KS)))
    args = parser.parse_args()

    ks = tuple(int(k) for k in args.ks.split(","))
    model = SentimentModel.from_pretrained(args.model, backend="torch")
    texts = sampled_reviews(Path(args.data), args.n, args.seed)
    print(f"# {common.machine()}; device {model.runtime.device}; {len(texts)} reviews, {args.steps} steps",
          flush=True)
    start = time.perf_counter()
    found = explain_many(model, texts, steps=args.steps, batch_size=args.batch_size,
                         internal_batch_size=args.internal_batch_size)
    seconds = time.perf_counter() - start
    deltas = np.abs([one.delta for one in found])
    print(f"# explained in {seconds:.1f} s ({len(texts) / seconds:.2f} reviews/s); |convergence delta| median "
          f"{np.median(deltas):.4f}, 95th percentile {np.percentile(deltas, 95):.4f}", flush=True)
    rows = drops(model, found, ks, args.seed, None)
    for row in rows:
        print(json.dumps({**row, "model": args.model, "steps": args.steps, "seed": args.seed}))
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
