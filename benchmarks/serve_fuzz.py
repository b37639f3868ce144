"""Schemathesis against `sentitune serve`'s OpenAPI schema, every phase and many examples: the longer run of
tests/test_serve_fuzz.py (which runs a bounded number of generated requests in the default suite).

The app is `sentitune.inference.serve.create_app` on a tiny random BERT (tests/conftest.py's `tiny_bert`), called
in-process through Schemathesis' ASGI transport, with micro-batching on and off. Schemathesis' engine runs its
phases (explicit examples, coverage of schema edge cases, Hypothesis fuzzing of valid and invalid requests,
stateful sequences where links exist) with every default check: no 5xx, status codes, content types, headers and
bodies as the schema documents them, valid data accepted, invalid data rejected.

    python benchmarks/serve_fuzz.py                        # 1,000 examples per operation and mode, both app modes
    python benchmarks/serve_fuzz.py --max-examples 200 --seed 1 --json /tmp/serve_fuzz.json

Prints one line per (app mode, phase, operation) with the requests made and the failures, then the totals; exit
code 1 when any check failed or any scenario errored (an exception escaping the app is an error).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(model: Path, batching: bool, max_examples: int, seed: int | None) -> dict:
    """One engine run against a fresh app: requests per (phase, operation), failures and errored scenarios."""
    import schemathesis
    from schemathesis.engine import Status, events

    from sentitune.inference.serve import create_app

    app = create_app(model, batching=batching)
    config = schemathesis.config.SchemathesisConfig.from_dict({"generation": {"max-examples": max_examples}})
    if seed is not None:
        config.update(seed=seed)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    requests, failures, errors = collections.Counter(), [], []
    started = time.perf_counter()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            phase = getattr(event.phase, "value", str(event.phase))
            requests[phase, event.label] += len(event.recorder.interactions)
            for checks in event.recorder.checks.values():
                failures += [{"operation": event.label, "phase": phase, "check": c.name,
                              "failure": str(c.failure_info.failure)[:500]} for c in checks if c.failure_info]
            if event.status == Status.ERROR:
                errors.append({"operation": event.label, "phase": phase})
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            errors.append({"event": type(event).__name__, "info": str(getattr(event, "info", event))[:500]})
    if app.state.batcher is not None:
        app.state.batcher.close()
    return {"batching": batching, "seconds": time.perf_counter() - started,
            "requests": {f"{phase} {label}": n for (phase, label), n in sorted(requests.items())},
            "operations": sorted({label for _, label in requests}), "failures": failures, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=1000, help="Hypothesis examples per operation and mode.")
    parser.add_argument("--seed", type=int, default=None, help="Schemathesis seed (default: random).")
    parser.add_argument("--json", type=Path, help="Write the results here as JSON.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import tiny_bert

    from sentitune.models.loading import quiet_transformers

    quiet_transformers()
    with tempfile.TemporaryDirectory(prefix="sentitune-serve-fuzz-") as scratch:
        model = tiny_bert(Path(scratch) / "tiny-bert")
        results = [run(model, batching, args.max_examples, args.seed) for batching in (True, False)]
    for result in results:
        mode = "batching" if result["batching"] else "no batching"
        for key, n in result["requests"].items():
            print(f"{mode:12} {key:32} {n:6,} requests")
        print(f"{mode:12} {len(result['failures'])} failed checks, {len(result['errors'])} errors, "
              f"{result['seconds']:.0f} s")
        for problem in result["failures"] + result["errors"]:
            print("   ", json.dumps(problem)[:600])
    total = sum(sum(r["requests"].values()) for r in results)
    bad = sum(len(r["failures"]) + len(r["errors"]) for r in results)
    print(f"{len(results[0]['operations'])} operations, {total:,} requests, {bad} failures")
    if args.json:
        args.json.write_text(json.dumps({"max_examples": args.max_examples, "seed": args.seed, "runs": results,
                                         "requests": total, "failures": bad}, indent=1))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
