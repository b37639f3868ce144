"""Where batch scoring's memory goes over time: RSS every second, and Python allocations (tracemalloc) between the
third chunk and the end, while `score_file` scores 300,000 synthetic rows with the tests' tiny model.

    flock /tmp/sentitune-cpu.lock python benchmarks/batch_memory_probe.py [--rows 300000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import batch_scoring
import psutil

import sentitune.inference.batch as batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sentitune-memprobe-"))
    model = batch_scoring.tiny_model(work / "model")
    pool = batch_scoring.sentence_pool(batch_scoring.common.IMDB)
    source = batch_scoring.synthetic_parquet(work / "in.parquet", args.rows, pool)
    process, samples, done = psutil.Process(), [], threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(process.memory_info().rss / 2**20)
            time.sleep(1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    tracemalloc.start()
    snapshots, write_part = [], batch.write_part

    def counted(job, index, table) -> None:
        write_part(job, index, table)
        if index == 2:
            snapshots.append(tracemalloc.take_snapshot())

    batch.write_part = counted
    batch.score_file(model, source, work / "out.parquet")
    done.set()
    sampler.join()
    for stat in tracemalloc.take_snapshot().compare_to(snapshots[0], "lineno")[:8]:
        print(stat)
    print("RSS MiB every 20 s:", [round(m) for m in samples[::20]])


if __name__ == "__main__":
    main()
