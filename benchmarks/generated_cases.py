"""Generated cases and real faults: runs the property, schema-fuzzing, preemption, disk-full, crash and concurrency
tests with $SENTITUNE_CASE_COUNTS set (tests/case_counts.py), then the longer Schemathesis run
(benchmarks/serve_fuzz.py), and writes what ran and how it ended into docs/reliability.md, after the hand-written
corpus (between the markers below; benchmarks/reliability.py keeps this part when it rewrites the corpus).

    python benchmarks/generated_cases.py                          # every test file below + serve_fuzz -> the report
    python benchmarks/generated_cases.py --serve-examples 200 --out /tmp/reliability.md

The property tests draw new examples on each run here (SENTITUNE_FUZZ=random; the default suite repeats the same
ones). Counts are what ran: Hypothesis examples each property test executed, requests Schemathesis sent (its examples),
faults injected (SIGTERM, SIGKILL, ENOSPC, concurrent writers). Each test file's outcome comes from pytest's JUnit
report; a failure is listed with its test id.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- generated cases: benchmarks/generated_cases.py writes from here to the end marker -->"
END = "<!-- end of generated cases -->"
FILES = {  # test file: what it generates or injects (issue 28's items)
    "tests/test_data_sources_fuzz.py": "Hypothesis: CSV/TSV/JSON/JSONL/parquet files and arbitrary bytes through "
                                       "read_source, prepare_frames and `sentitune train` (1)",
    "tests/test_labels_fuzz.py": "Hypothesis: label values and --labels orders through infer_scheme (1)",
    "tests/test_run_config_fuzz.py": "Hypothesis: YAML configs (any values, any keys, presets, arbitrary text) "
                                     "through load_config and `sentitune train --config` (1)",
    "tests/test_serve_fuzz.py": "Schemathesis: every operation of the serve app's OpenAPI schema, valid and invalid "
                                "requests; the documented limits (2)",
    "tests/test_preemption.py": "SIGTERM in train, distill, adapt and predict --input, then --resume (3)",
    "tests/test_disk_full.py": "ENOSPC injected (and real, on a small tmpfs where root may mount one) in a run, an "
                               "export and batch scoring (4)",
    "tests/test_train.py": "kill -9 at 9 points of a run, then --resume: while tokenizing, before the first "
                           "checkpoint, mid-step in epochs 1 and 2 (length-grouped), mid-checkpoint write, after "
                           "training, during the test pass, during the final save, while replacing an older run (5)",
    "tests/test_concurrency.py": "two jobs on one output, serve while its model folder is replaced, two tuners on "
                                 "one study (6)",
}
FOUND = [  # what the generated cases found, and the fix (each kept as a regular test in the file named)
    ("data", "a CSV text reading NA, null or None was taken for a missing one", "only an empty field is a missing "
     "text (tests/test_data_sources_fuzz.py)"),
    ("data", "a UTF-8 byte-order mark broke JSON and JSONL files", "dropped before parsing"),
    ("data", "parquet with a repeated column name was unreadable", "repeats numbered like pandas' CSV reader"),
    ("data", "--text-column beside a column called text doubled the column (crash)", "the unchosen one is dropped"),
    ("data", "a list, object or blank label got through to the label scheme (crash)", "one-line error naming the row"),
    ("data", "sklearn's errors for a class too small to hold out or sample escaped as tracebacks",
     "one line naming the file and --validation-size/--test-size/--train-examples"),
    ("labels", "digits of other scripts (٣, １) were read as numbers whose labels then did not encode",
     "only ASCII digits are numbers (tests/test_labels_fuzz.py)"),
    ("labels", "spellings of one number (01 and 1, -0.0 and 0) split or refused a class; [0, False] crashed",
     "whole numbers keyed in one spelling; first spelling per key"),
    ("errors", "a label or value holding a line break made a two-line error", "line breaks shown escaped"),
    ("config", ".inf, 1e400 and huge integers crashed load_config (OverflowError)", "one line naming the field "
     "(tests/test_run_config_fuzz.py)"),
    ("config", "non-text YAML keys crashed the unknown-field message; a mapping over a preset's number crashed",
     "keys shown as text; the mapping is a type error"),
    ("config", "seeds numpy refuses (negative, >= 2^32) and NUL in names or paths were accepted", "refused up front"),
    ("config", "a config file that is not UTF-8 crashed", "one line with the byte offset"),
    ("serve", "the 408/413/422/503 answers were not in the OpenAPI schema (422's shape differed)",
     "documented with their body (tests/test_serve_fuzz.py)"),
    ("serve", "a body that is not UTF-8/16/32 got FastAPI's undocumented 400", "422 like any other unparsable body"),
    ("serve", "/explain's target named no labels in the schema", "the model's labels listed as its enum"),
    ("serve", "a second lifespan (a client used twice) found the micro-batcher closed: 500",
     "reopened at startup; after shutdown 503"),
    ("serve", "/explain loaded its model from the folder on first use: after a replacement it explained another "
     "model, or failed mid-copy", "only from the files served; else 503 (tests/test_concurrency.py)"),
    ("tune", "workers sharing a study wrote the same plot files in place", "written atomically"),
    ("batch", "two jobs with one output could write one parts folder", "a lock beside the output"),
    ("resume", "with no complete checkpoint (first save cut short by a full disk) --resume was handed an "
     "incomplete one and crashed", "starts over (tests/test_disk_full.py)"),
    ("preemption", "after OpenVINO models were compiled and released (the export tests), SIGTERM ended the process "
     "with SIGSEGV (exit 139; CI): OpenVINO's CPU plugin left the main thread's alternate signal stack on freed memory",
     "after each OpenVINO compile and on each Preemption the thread gets an alternate signal stack that lives as long "
     "as the process (tests/test_preemption.py, tests/test_export.py)"),
    ("data", "a JSON/JSONL integer beyond 64 bits in another column (a rating of -2**63 - 1) refused a valid file",
     "read through Python's json where pandas' parser refuses it (tests/test_data_sources_fuzz.py)"),
    ("resume", "adapt resumed inexactly: the Trainer restores the RNG only after the first resumed batch is masked",
     "masks seeded by the batch's tokens (tests/test_preemption.py)"),
]


def run_tests(files: list[str], counts: Path, junit: Path) -> tuple[int, float]:
    started = time.perf_counter()
    env = {**os.environ, "SENTITUNE_CASE_COUNTS": str(counts), "HF_HUB_OFFLINE": "1", "SENTITUNE_FUZZ": "random"}
    code = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                           *files], cwd=ROOT, env=env).returncode
    return code, time.perf_counter() - started


def outcomes(junit: Path) -> dict[str, dict]:
    """Per test file: passed, failed, skipped (with reasons) and the failing test ids."""
    per = collections.defaultdict(lambda: {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": set()})
    for case in ET.parse(junit).getroot().iter("testcase"):
        file = "tests/" + case.get("classname", "").split(".")[-1] + ".py"
        entry = per[file]
        if case.find("failure") is not None or case.find("error") is not None:
            entry["failed"] += 1
            entry["failures"].append(case.get("name"))
        elif (skip := case.find("skipped")) is not None:
            entry["skipped"] += 1
            entry["skips"].add(skip.get("message", "").splitlines()[0][:120])
        else:
            entry["passed"] += 1
    return per


def read_counts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def section(args_line: str, wall: float, per: dict, counts: list[dict], serve: dict | None, machine: str) -> str:
    by_kind = collections.defaultdict(collections.Counter)
    for c in counts:
        by_kind[c["kind"]][c["name"]] += c["n"]
    total = {kind: sum(v.values()) for kind, v in by_kind.items()}
    failed = sum(e["failed"] for e in per.values())
    lines = [START, "", "## Generated cases and real faults", "",
             f"Written by `{args_line}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {wall:.0f} s; "
             f"{machine}.", "",
             f"**{total.get('hypothesis', 0):,} Hypothesis examples, {total.get('schemathesis', 0):,} Schemathesis "
             f"requests in the test suite" + (f" and {serve['requests']:,} in the longer run" if serve else "") +
             f", {total.get('fault', 0):,} faults injected; {failed} unexplained failure(s).**", "",
             "Properties: a reader or validator returns a correct result or a one-line SentituneError naming the "
             "file or field (exit code 2 through the CLI), never a traceback, never a partial folder; the serve app "
             "answers every generated request without a 5xx and as its OpenAPI schema documents (408, 413, 422, "
             "503 included); SIGTERM stops train, distill, adapt and predict --input with a checkpoint (or the "
             "chunks done), exit code 143 and one stderr line, and --resume ends bit-exactly where an "
             "uninterrupted run ends; a full disk gives one line (exit 2) and leaves the earlier run, export or "
             "output as it was; concurrent writers never leave a torn file.", "",
             "| test file | what it generates or injects (issue 28 item) | passed | failed | skipped |",
             "| --- | --- | ---: | ---: | ---: |"]
    for file, what in FILES.items():
        e = per.get(file, {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": set()})
        lines.append(f"| `{file}` | {what} | {e['passed']} | {e['failed']} | {e['skipped']} |")
    for file, e in per.items():
        for name in e["failures"]:
            lines.append(f"\nFAILED `{file}::{name}`")
        for reason in sorted(e["skips"]):
            lines.append(f"\nSkipped in `{file}`: {reason}")
    for kind, title in (("hypothesis", "Hypothesis examples run"), ("schemathesis", "Schemathesis requests (examples)"),
                        ("fault", "Faults injected")):
        lines += ["", f"**{title}: {total.get(kind, 0):,}**", "", "| case | count |", "| --- | ---: |"]
        lines += [f"| {name} | {n:,} |" for name, n in sorted(by_kind[kind].items())]
    if serve:
        ops = serve["runs"][0]["operations"]
        lines += ["", f"**Longer Schemathesis run** (`benchmarks/serve_fuzz.py --max-examples {serve['max_examples']}`"
                      f", every phase, every default check, micro-batching on and off): {len(ops)} operations "
                      f"({', '.join(ops)}), {serve['requests']:,} requests, {serve['failures']} failures.", "",
                  "| app | phase and operation | requests |", "| --- | --- | ---: |"]
        for run in serve["runs"]:
            mode = "batching" if run["batching"] else "no batching"
            lines += [f"| {mode} | {key} | {n:,} |" for key, n in run["requests"].items() if n]
    lines += ["", "**What they found, and the fix** (each shrunk example kept as a regular test):", "",
              "| area | found | fixed |", "| --- | --- | --- |"]
    lines += [f"| {area} | {found} | {fix} |" for area, found, fix in FOUND]
    return "\n".join(lines + ["", END, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md", help="Report to update.")
    parser.add_argument("--serve-examples", type=int, default=1000, help="benchmarks/serve_fuzz.py --max-examples "
                                                                         "(0: skip the longer run).")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sentitune-generated-") as scratch:
        scratch = Path(scratch)
        counts, junit, serve_json = scratch / "counts.jsonl", scratch / "junit.xml", scratch / "serve_fuzz.json"
        run_tests(list(FILES), counts, junit)
        per, recorded = outcomes(junit), read_counts(counts)
        serve = None
        if args.serve_examples:
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serve_fuzz.py"), "--max-examples",
                            str(args.serve_examples), "--json", str(serve_json)], cwd=ROOT)
            serve = json.loads(serve_json.read_text()) if serve_json.is_file() else None
    command = shlex.join(["python", "benchmarks/generated_cases.py", *sys.argv[1:]])
    text = section(command, time.perf_counter() - started, per, recorded, serve, common.machine())
    old = args.out.read_text() if args.out.is_file() else ""
    before = old.split(START)[0].rstrip("\n") + "\n\n" if old else ""
    after = old.split(END, 1)[1].lstrip("\n") if END in old else ""
    args.out.write_text(before + text + after)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
