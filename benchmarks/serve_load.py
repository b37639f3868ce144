"""Load on `sentitune serve`: many small requests over loopback at a fixed concurrency, counted by status code,
with throughput, p50/p99 latency, /health latency under load, the server's peak memory, and four parallel
20 MB bodies (each must get a 413 without the server's memory growing).

    flock /tmp/sentitune-cpu.lock python benchmarks/serve_load.py RUN_OR_MODEL \
        [--texts ../shared/data/tweeteval/test.parquet] [--phases 10000x32,3000x256] [--port 8765] \
        [--no-batching] [--max-in-flight N]

The server runs in its own process with its defaults (`sentitune serve`), one text per request; run it twice,
with and without --no-batching, to compare micro-batching with one thread per request.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402


def start_server(model: str, port: int, batching: bool = True, max_in_flight: int | None = None) -> subprocess.Popen:
    flags = ([] if batching else ["--no-batching"]) + ([f"--max-in-flight={max_in_flight}"] if max_in_flight else [])
    server = subprocess.Popen([sys.executable, "-m", "sentitune", "serve", model, "--port", str(port), *flags],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit(f"server did not start: {server.stderr.read()[-2000:]}")


def rss_mb(pid: int) -> tuple[float, float]:
    """Current and peak resident memory of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class Connection:
    """One keep-alive HTTP/1.1 connection. A lean client on purpose: on 2 cores the load generator shares the CPU with
    the server, and httpx's pool at 256 connections cost more CPU than the server's answers (54 answers/s, even
    for instant 503s)."""

    def __init__(self, host: str, port: int):
        self.host, self.port, self.reader, self.writer = host, port, None, None

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        try:
            status = int((await self.reader.readline()).split()[1])
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                length = int(value) if name.lower() == "content-length" else length
                close = close or (name.lower() == "connection" and value.strip().lower() == "close")
            await self.reader.readexactly(length)
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
            self.close()
            raise
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def phase(url: str, texts: list[str], requests: int, concurrency: int) -> dict:
    """`requests` POST /predict calls by `concurrency` workers (a connection each), plus a /health probe every
    0.5 s meanwhile on its own connection."""
    latencies, codes, health = [], collections.Counter(), []
    host, port = url.removeprefix("http://").split(":")
    bodies = [json.dumps({"texts": [text]}).encode() for text in texts]
    counter = iter(range(requests))

    async def worker():
        connection = Connection(host, int(port))
        for i in counter:
            started = time.perf_counter()
            try:
                codes[await connection.request("POST", "/predict", bodies[i % len(bodies)])] += 1
            except (OSError, IndexError, ValueError, asyncio.IncompleteReadError) as exc:
                codes[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - started)
        connection.close()

    async def probe(stop: asyncio.Event):
        connection = Connection(host, int(port))
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await connection.request("GET", "/health")
                health.append(time.perf_counter() - started)
            except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
                health.append(float("nan"))
            await asyncio.sleep(0.5)
        connection.close()

    stop = asyncio.Event()
    prober = asyncio.create_task(probe(stop))
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    stop.set()
    await prober
    lat = np.array(latencies) * 1000
    ok = codes.get(200, 0)
    return {"requests": requests, "concurrency": concurrency, "wall_s": round(wall, 1),
            "answered_per_s": round(requests / wall, 1), "ok_per_s": round(ok / wall, 1),
            "codes": {str(k): v for k, v in sorted(codes.items(), key=str)},
            "errors": requests - sum(v for k, v in codes.items() if k in (200, 503)),
            "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1),
            "health_p50_ms": round(float(np.nanpercentile(np.array(health) * 1000, 50)), 1) if health else None,
            "health_max_ms": round(float(np.nanmax(np.array(health) * 1000)), 1) if health else None}


async def big_bodies(url: str, n: int = 4, size: int = 20 << 20) -> list[int]:
    body = b'{"texts": ["' + b"x" * size + b'"]}'
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        responses = await asyncio.gather(*(client.post("/predict", content=body,
                                                       headers={"content-type": "application/json"})
                                           for _ in range(n)), return_exceptions=True)
    return [r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in responses]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--texts", default="/work/shared/data/tweeteval/test.parquet")
    parser.add_argument("--phases", default="10000x32,3000x256")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--no-batching", dest="batching", action="store_false",
                        help="start the server with --no-batching (each request scored in its own thread)")
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="the server's --max-in-flight (default: its own, 256 with batching, 8 without)")
    args = parser.parse_args()
    texts = pd.read_parquet(args.texts)["text"].tolist()
    print(machine(), flush=True)
    server = start_server(args.model, args.port, args.batching, args.max_in_flight)
    url = f"http://127.0.0.1:{args.port}"
    try:
        results = {"machine": machine(), "model": args.model, "texts": args.texts, "batching": args.batching,
                   "max_in_flight": args.max_in_flight, "phases": []}
        results["rss_idle_mb"] = round(rss_mb(server.pid)[0])
        for spec in args.phases.split(","):
            requests, concurrency = map(int, spec.split("x"))
            row = asyncio.run(phase(url, texts, requests, concurrency))
            row["server_peak_rss_mb"] = round(rss_mb(server.pid)[1])
            results["phases"].append(row)
            print(json.dumps(row), flush=True)
        before = rss_mb(server.pid)[1]
        codes = asyncio.run(big_bodies(url))
        results["big_bodies"] = {"codes": codes, "peak_rss_before_mb": round(before),
                                 "peak_rss_after_mb": round(rss_mb(server.pid)[1])}
        print(json.dumps(results["big_bodies"]), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
