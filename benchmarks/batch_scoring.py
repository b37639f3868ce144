"""Batch scoring at scale: peak memory and throughput of `sentitune.inference.batch.score_file` by input size.

    flock /tmp/sentitune-cpu.lock python benchmarks/batch_scoring.py --tiny                   # 10k, 100k, 1M rows
    flock /tmp/sentitune-cpu.lock python benchmarks/batch_scoring.py --model runs/x --sizes 10000,100000

The input is a synthetic parquet of N rows (id, text): sentences of IMDB reviews (unsupervised.parquet, else
train.parquet), repeated to reach N, written to a temporary folder. Each arm runs in a fresh process and
reports its own peak RSS (ru_maxrss), so the sizes do not share memory: flat peak RSS across 10k, 100k and 1M
rows is the claim that streaming holds memory bounded. The `load` arm only loads the model (the floor under
every other arm's memory); the `memory` arm scores the 10k rows with `predict_proba` on the whole list, the
in-memory path, against `stream` at 10k for throughput. `--tiny` scores with a 2-layer random BERT (the one in
tests/conftest.py) so that 1M rows takes minutes; a real model at 1M rows takes hours on a CPU.
Prints one JSON line per arm, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

DEFAULT_SIZES = "10000,100000,1000000"
POOL_SIZE = 200_000  # distinct sentences; larger inputs repeat them
WRITE_ROWS = 100_000  # rows per parquet row group written


def sentence_pool(data: Path, limit: int = POOL_SIZE) -> list[str]:
    """Up to `limit` distinct IMDB sentences of 20 to 400 characters (HTML line breaks removed)."""
    import pyarrow.parquet as pq

    source = data / "unsupervised.parquet"
    source = source if source.is_file() else data / "train.parquet"
    seen: dict[str, None] = {}
    for batch in pq.ParquetFile(source).iter_batches(batch_size=2_000, columns=["text"]):
        for review in batch.column(0).to_pylist():
            for sentence in re.split(r"(?<=[.!?])\s+", review.replace("<br />", " ")):
                if 20 <= len(sentence) <= 400:
                    seen[sentence.strip()] = None
        if len(seen) >= limit:
            break
    return list(seen)[:limit]


def synthetic_parquet(path: Path, rows: int, pool: list[str]) -> Path:
    """`rows` rows of (id, text) cycling through `pool`, written one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.int64()), ("text", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, WRITE_ROWS):
            ids = range(start, min(start + WRITE_ROWS, rows))
            writer.write_table(pa.table({"id": list(ids), "text": [pool[i % len(pool)] for i in ids]}, schema))
    return path


def tiny_model(folder: Path) -> Path:
    """The 2-layer random BERT of the tests (tests/conftest.py `tiny_bert`), saved to `folder`."""
    sys.path.insert(0, str(common.ROOT / "tests"))
    from conftest import tiny_bert

    return tiny_bert(folder)


# --- the arms, each in its own process -------------------------------------------------------------------


def arm(spec: dict) -> dict:
    """Run one arm in this process; its figures plus this process's peak RSS."""
    from sentitune.models.loading import quiet_transformers

    quiet_transformers()
    row = {"arm": spec["arm"], "rows": spec.get("rows", 0)} | {"load": load_arm, "memory": memory_arm,
                                                               "stream": stream_arm}[spec["arm"]](spec)
    return row | {"peak_rss_mb": common.peak_rss_mb()}


def load_arm(spec: dict) -> dict:
    from sentitune.inference.predict import SentimentModel

    model = SentimentModel.from_pretrained(spec["model"], backend=spec["backend"])
    model.predict_proba(["a warm-up text"] * 16, spec["batch_size"])
    return {}


def memory_arm(spec: dict) -> dict:
    """`predict_proba` on the whole list of texts: the in-memory path (model loaded before the clock starts)."""
    import pyarrow.parquet as pq

    from sentitune.inference.predict import SentimentModel

    texts = pq.read_table(spec["input"], columns=["text"]).column(0).to_pylist()
    model = SentimentModel.from_pretrained(spec["model"], backend=spec["backend"])
    start = time.perf_counter()
    model.predict_proba(texts, spec["batch_size"])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows_per_s": len(texts) / seconds, "model_texts_per_s": len(texts) / seconds}


def stream_arm(spec: dict) -> dict:
    """`score_file` end to end: read, score and write in chunks, assemble the output (model load excluded)."""
    from sentitune.inference.batch import score_file

    summary = score_file(spec["model"], spec["input"], spec["output"], chunk_size=spec["chunk_size"],
                         batch_size=spec["batch_size"], backend=spec["backend"], progress=False)
    seconds = summary["seconds"] - summary["load_s"]
    return {"seconds": seconds, "rows_per_s": summary["rows"] / seconds,
            "model_texts_per_s": summary["texts_per_s"], "load_s": summary["load_s"]}


# --- the driver --------------------------------------------------------------------------------------------


def arms(args, model: Path, work: Path, sizes: list[int]) -> list[dict]:
    """Every arm's result: load, memory at the smallest size, then stream at each size."""
    base = {"model": str(model), "backend": args.backend, "batch_size": args.batch_size,
            "chunk_size": args.chunk_size}
    pool = sentence_pool(Path(args.data))
    results = [report(common.run_json("batch_scoring.py", base | {"arm": "load"}))]
    for index, rows in enumerate(sizes):
        source = synthetic_parquet(work / f"in-{rows}.parquet", rows, pool)
        if index == 0:
            results.append(report(common.run_json("batch_scoring.py", base | {"arm": "memory", "rows": rows,
                                                                               "input": str(source)})))
        output = work / f"out-{rows}{args.output_suffix}"
        results.append(report(common.run_json("batch_scoring.py", base | {"arm": "stream", "rows": rows,
                                                                           "input": str(source),
                                                                           "output": str(output)})))
        source.unlink()
        output.unlink()
    return results


def report(row: dict) -> dict:
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="A model folder or run folder to score with.")
    parser.add_argument("--tiny", action="store_true", help="Score with the tests' 2-layer random BERT.")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="Comma-separated row counts.")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--output-suffix", default=".parquet", help=".parquet, .csv, .tsv or .jsonl")
    parser.add_argument("--data", default=str(common.IMDB), help="The IMDB parquet folder.")
    parser.add_argument("--spec", help=argparse.SUPPRESS)  # one arm, in a child process
    args = parser.parse_args()
    if args.spec:
        print(json.dumps(arm(json.loads(args.spec))))
        return
    if bool(args.model) == args.tiny:
        parser.error("pass --model PATH or --tiny")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(f"# {common.machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sentitune-batch-") as tmp:
        model = tiny_model(Path(tmp) / "tiny") if args.tiny else Path(args.model)
        results = arms(args, model, Path(tmp), sizes)
    floor = results[0]["peak_rss_mb"]
    for row in results:
        row["rss_over_load_mb"] = row["peak_rss_mb"] - floor
    print(common.markdown_table(results, ["arm", "rows", "seconds", "rows_per_s", "model_texts_per_s",
                                          "peak_rss_mb", "rss_over_load_mb"]))
    memory, stream = (next(r for r in results if r["arm"] == a) for a in ("memory", "stream"))
    print(f"\nstreaming / in-memory throughput at {stream['rows']:,} rows: "
          f"{stream['rows_per_s'] / memory['rows_per_s']:.3f}")


if __name__ == "__main__":
    main()
