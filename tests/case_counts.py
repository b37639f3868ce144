"""Settings and counts of generated cases (Hypothesis examples, Schemathesis requests, injected faults) for
docs/reliability.md: with $SENTITUNE_CASE_COUNTS set, `record` appends one JSON line per count to that file;
`benchmarks/generated_cases.py` runs the tests that way and writes the totals into the report."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck

ENV = "SENTITUNE_CASE_COUNTS"
# The property tests' settings: no example database, no deadline (a loaded 2-core CPU), and the same examples on
# every run of the default suite (derandomized: a failure is reproducible, not a flake); SENTITUNE_FUZZ=random draws
# new ones each run (benchmarks/generated_cases.py does).
FUZZ = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck),
            derandomize=os.environ.get("SENTITUNE_FUZZ") != "random")


def record(kind: str, name: str, n: int = 1, **facts) -> None:
    """Add `n` cases of `kind` (hypothesis, schemathesis, fault) under `name` (the test and what it generates)."""
    path = os.environ.get(ENV)
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"kind": kind, "name": name, "n": n, **facts}) + "\n")


class Counter:
    """Counts the examples a Hypothesis test ran, and records them once it has finished."""

    def __init__(self, kind: str, name: str):
        self.kind, self.name, self.n = kind, name, 0

    def __call__(self) -> None:
        self.n += 1

    def __enter__(self) -> "Counter":
        return self

    def __exit__(self, *exc) -> None:
        record(self.kind, self.name, self.n, failed=exc[0] is not None)
