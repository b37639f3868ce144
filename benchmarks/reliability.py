"""Reliability corpus: bad input and edge cases run against the real `sentitune` command line.

Each CLI case is a subprocess `python -m sentitune ...` (HF_HUB_OFFLINE=1, 120 s timeout) run in a folder of its
own, on a tiny random BERT (tests/conftest.py's `tiny_bert`) and tiny synthetic data (`synthetic_reviews`), both
built once. The HTTP cases call `sentitune.inference.serve.create_app` in-process through FastAPI's TestClient.

What counts as "as expected":
  bad input    exit code 2, exactly one non-empty line on stderr that names the file/flag/field, no "Traceback",
               and nothing written (the case folder, which is also the working directory and holds --output-dir
               and --study, is byte-for-byte what it was before the command);
  valid input  exit code 0 (and, where stated, the JSON lines or files it must produce);
  HTTP         the stated status code and body properties.

    python benchmarks/reliability.py                             # every case -> docs/reliability.md
    python benchmarks/reliability.py --only C01,P07 --out /tmp/reliability.md
    python benchmarks/reliability.py --list                      # the corpus, without running it
    python benchmarks/reliability.py --jobs 1 --keep             # one case at a time; keep the scratch folder

The table records what each case really did; a case that does not behave as expected says so in its verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Union

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120
JSON_HEADER = {"content-type": "application/json"}


# ---------------------------------------------------------------- workspace: the tiny model and data, built once


@dataclass(frozen=True)
class Workspace:
    root: Path
    model: Path  # tiny random BERT with the default model's tokenizer
    data: Path  # parquet folder: train.parquet (60 per class), test.parquet (30 per class)


def conftest():
    """tests/conftest.py as a module (tiny_bert, synthetic_reviews)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest as module

    return module


def build_workspace(root: Path) -> Workspace:
    from sentitune.models.loading import quiet_transformers

    quiet_transformers()
    helpers = conftest()
    model = helpers.tiny_bert(root / "tiny-bert")
    data = root / "data"
    data.mkdir()
    helpers.synthetic_reviews(60, seed=0).to_parquet(data / "train.parquet")
    helpers.synthetic_reviews(30, seed=1).assign(movie=lambda d: d.movie.str.replace("tt", "tx")).to_parquet(
        data / "test.parquet")
    return Workspace(root, model, data)


# ---------------------------------------------------------------- file builders (a case's `files` values)

# A file's content: text, bytes, None (an empty folder) or a function that writes `path` given the workspace.
Content = Union[str, bytes, None, Callable[[Path, Workspace], None]]


def reviews_file(change: Callable | None = None, n_per_class: int = 30):
    """Synthetic reviews (text, label) as CSV or JSONL by the file's suffix, after `change(frame)`."""

    def write(path: Path, ws: Workspace) -> None:
        frame = conftest().synthetic_reviews(n_per_class)[["text", "label"]]
        frame = change(frame) if change else frame
        if path.suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(path, index=False)

    return write


def with_emoji(frame):
    extras = ["😀 loved it 🎬", "Ça m'a ému, très beau", "映画は素晴らしい", "فيلم رائع", "\u200b zero width \ufeff"]
    return frame.assign(text=[f"{t} {extras[i % len(extras)]}" for i, t in enumerate(frame.text)])


def with_long_text(frame):
    frame = frame.copy()
    frame.loc[0, "text"] = "a truly dull film " * 12_000  # ~216,000 characters
    return frame


def with_nel(frame):
    return frame.assign(text=frame.text.str.replace(" ", "\x85 ", n=1, regex=False))


def parquet_without_test_labels(path: Path, ws: Workspace) -> None:
    path.mkdir(parents=True)
    shutil.copy(ws.data / "train.parquet", path / "train.parquet")
    conftest().synthetic_reviews(10, seed=1)[["text"]].to_parquet(path / "test.parquet")


def model_copy(change: Callable[[Path], None]):
    """The tiny model copied to `path`, then `change(path)`."""

    def write(path: Path, ws: Workspace) -> None:
        shutil.copytree(ws.model, path)
        change(path)

    return write


def drop_tokenizer(folder: Path) -> None:
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)


def tear_weights(folder: Path) -> None:
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])


def weights_as_bin(folder: Path) -> None:
    next(folder.glob("*.safetensors")).rename(folder / "pytorch_model.bin")


def break_config(folder: Path) -> None:
    (folder / "config.json").write_text("{not json")


# ---------------------------------------------------------------- what a case should do


@dataclass
class Ran:
    """One finished CLI subprocess."""

    rc: int | None
    stdout: str
    stderr: str
    folder: Path
    changed: list[str]  # paths created, removed or modified in the case folder
    timed_out: bool = False

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.stdout + self.stderr


def clip(text: str, n: int = 180) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


class Rejects:
    """Bad input: exit 2, one non-empty stderr line naming every one of `names`, no traceback, nothing written."""

    def __init__(self, *names: str):
        self.names = names

    @property
    def text(self) -> str:
        return f"exit 2; 1 line naming {' + '.join(code(n) for n in self.names)}; no traceback; nothing written"

    def judge(self, ran: Ran) -> tuple[str, list[str]]:
        if ran.timed_out:
            return f"timed out after {TIMEOUT_S} s", ["timeout"]
        lines = ran.stderr_lines
        shown = lines[0] if len(lines) == 1 else (f"last: {lines[-1]}" if lines else "(nothing)")
        actual = f"exit {ran.rc}; {len(lines)} stderr line(s): {code(clip(shown))}"
        if ran.changed:
            actual += f"; wrote {', '.join(ran.changed[:3])}"
        problems = [f"exit {ran.rc}"] if ran.rc != 2 else []
        if len(lines) != 1:
            problems.append(f"{len(lines)} stderr lines")
        missing = [n for n in self.names if n not in "\n".join(lines)]
        if missing:
            problems.append(f"does not name {', '.join(missing)}")
        if ran.traceback:
            problems.append("traceback")
        if ran.changed:
            problems.append("wrote files")
        return actual, problems


class Accepts:
    """Valid input: exit 0, optionally `json_lines` JSON lines on stdout and a file `creates` in the case folder."""

    def __init__(self, json_lines: int | None = None, creates: str | None = None):
        self.json_lines, self.creates = json_lines, creates

    @property
    def text(self) -> str:
        parts = ["exit 0"]
        if self.json_lines is not None:
            parts.append(f"{self.json_lines} JSON lines")
        if self.creates:
            parts.append(f"writes {code(self.creates)}")
        return "; ".join(parts)

    def judge(self, ran: Ran) -> tuple[str, list[str]]:
        if ran.timed_out:
            return f"timed out after {TIMEOUT_S} s", ["timeout"]
        rows = []
        for line in ran.stdout.splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        actual = f"exit {ran.rc}"
        problems = [f"exit {ran.rc}"] if ran.rc != 0 else []
        if ran.rc != 0 and ran.stderr_lines:
            actual += f"; last stderr line: {code(clip(ran.stderr_lines[-1]))}"
        if self.json_lines is not None:
            actual += f"; {len(rows)} JSON lines"
            if len(rows) != self.json_lines:
                problems.append(f"{len(rows)} JSON lines")
        if self.creates:
            made = (ran.folder / self.creates).is_file()
            actual += f"; {code(self.creates)} {'written' if made else 'missing'}"
            if not made:
                problems.append(f"no {self.creates}")
        if ran.traceback:
            problems.append("traceback")
        return actual, problems


class Answers:
    """An HTTP answer: `status`, optionally a short JSON body, a body that does not echo `not_echoed`, or one that
    contains `says`."""

    def __init__(self, status: int, short: bool = False, not_echoed: str | None = None, says: str | None = None):
        self.status, self.short, self.not_echoed, self.says = status, short, not_echoed, says

    @property
    def text(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.short:
            parts.append("short JSON (< 200 bytes)")
        if self.not_echoed:
            parts.append("input not echoed")
        if self.says:
            parts.append(f"says {code(self.says)}")
        return "; ".join(parts)

    def judge(self, response) -> tuple[str, list[str]]:
        body = response.text
        actual = f"HTTP {response.status_code}; {len(response.content)} bytes: {code(clip(body, 120))}"
        problems = [f"HTTP {response.status_code}"] if response.status_code != self.status else []
        if self.short:
            try:
                json.loads(body)
            except json.JSONDecodeError:
                problems.append("body not JSON")
            if len(response.content) >= 200:
                problems.append(f"body {len(response.content)} bytes")
        if self.not_echoed and self.not_echoed in body:
            problems.append("input echoed")
        if self.says and self.says not in body:
            problems.append(f"no '{self.says}'")
        return actual, problems


Expectation = Union[Rejects, Accepts, Answers]


@dataclass
class Case:
    """One corpus entry: `run` is the CLI's arguments (with {model}, {data} and {case} filled in) or a function of
    the workspace that returns an HTTP response; `files` are written into the case folder first."""

    id: str
    area: str
    description: str
    run: tuple[str, ...] | Callable[[Workspace], object]
    expected: Expectation
    files: dict[str, Content] = field(default_factory=dict)


# ---------------------------------------------------------------- command builders

FAST = ("--max-steps", "2", "--max-length", "32")  # a valid run trains 2 steps; later flags override these


def train(*flags: str, data: str = "{data}") -> tuple[str, ...]:
    return ("train", "--model", "{model}", "--data", data, "--output-dir", "{case}/runs", *FAST, *flags)


def train_with_yaml(*flags: str) -> tuple[str, ...]:
    """`train` with the case's YAML config file, c.yaml."""
    return train("--config", "{case}/c.yaml", *flags)


def tune(*flags: str) -> tuple[str, ...]:
    return ("tune", "--model", "{model}", "--data", "{data}", "--output-dir", "{case}/runs", "--study",
            "{case}/study", "--space", "{case}/space.yaml", "--n-trials", "1", "--pruner", "none", "--batch-size",
            "8", *FAST, *flags)


def csv(*rows: str) -> str:
    return "text,label\n" + "".join(row + "\n" for row in rows)


def code(text: str) -> str:
    """A Markdown code span that survives backticks and table pipes."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


# ---------------------------------------------------------------- HTTP cases (in-process, FastAPI's TestClient)


def client(ws: Workspace, **kwargs):
    from fastapi.testclient import TestClient

    from sentitune.inference.serve import create_app

    return TestClient(create_app(ws.model, **kwargs))


def post_two_megabytes(ws: Workspace):
    body = b'{"texts": ["' + b"x" * 2_000_000 + b'"]}'
    return client(ws, max_body=1 << 20).post("/predict", content=body, headers=JSON_HEADER)


def post_texts_not_a_list(ws: Workspace):
    return client(ws).post("/predict", json={"texts": "not a list " * 50})


def post_empty_list(ws: Workspace):
    return client(ws).post("/predict", json={"texts": []})


def post_lone_surrogate(ws: Workspace):
    return client(ws).post("/predict", content=b'{"texts": ["ok \\ud800 fine"]}', headers=JSON_HEADER)


def post_long_text(ws: Workspace):
    return client(ws).post("/predict", json={"texts": ["y" * 20_001]})


def post_when_full(ws: Workspace):
    app_client = client(ws, max_in_flight=1)
    app_client.app.state.slots.acquire()  # the only slot is taken: one request in flight
    try:
        return app_client.post("/predict", json={"texts": ["a fine film"]})
    finally:
        app_client.app.state.slots.release()


def post_broken_json(ws: Workspace):
    return client(ws).post("/predict", content=b'{"texts": ["unterminated', headers=JSON_HEADER)


def post_too_many_texts(ws: Workspace):
    return client(ws).post("/predict", json={"texts": ["ok"] * 1025})


def get_health(ws: Workspace):
    return client(ws).get("/health")


# ---------------------------------------------------------------- the corpus

LR_SPACE = "learning_rate: {type: float, low: %s, high: %s%s}\n"

CASES: list[Case] = [
    # data files
    Case("D01", "data", "--data names a missing file", train(data="{case}/missing.csv"), Rejects("missing.csv")),
    Case("D02", "data", "unknown suffix (.xlsx)", train(data="{case}/x.xlsx"), Rejects("x.xlsx"), {"x.xlsx": "a"}),
    Case("D03", "data", "text column missing (review,label)", train(data="{case}/x.csv"),
         Rejects("x.csv", "--text-column"), {"x.csv": "review,label\nfine,1\nbad,0\n"}),
    Case("D04", "data", "a blank text", train(data="{case}/x.csv"), Rejects("x.csv"),
         {"x.csv": csv("ok,1", " ,0")}),
    Case("D05", "data", "text column holds integers", train(data="{case}/x.csv"), Rejects("x.csv", "text"),
         {"x.csv": csv("1,0", "2,1")}),
    Case("D06", "data", "a missing (NaN) label", train(data="{case}/x.csv"), Rejects("x.csv"),
         {"x.csv": csv("ok,1", "fine,", "bad,0")}),
    Case("D07", "data", "a single class", train(data="{case}/x.csv"), Rejects("x.csv"),
         {"x.csv": csv(*[f"ok {i},1" for i in range(20)])}),
    Case("D08", "data", "a class with one example", train(data="{case}/x.csv"), Rejects("x.csv"),
         {"x.csv": csv(*[f"ok {i},a" for i in range(5)], *[f"fine {i},b" for i in range(5)], "rare,c")}),
    Case("D09", "data", "labels mix numbers and names", train(data="{case}/x.csv"), Rejects("x.csv"),
         {"x.csv": csv(*[f"ok {i},1" for i in range(5)], *[f"bad {i},maybe" for i in range(5)])}),
    Case("D10", "data", "a label outside --labels a,b", train("--labels", "a,b", data="{case}/x.csv"),
         Rejects("x.csv", "--labels"), {"x.csv": csv(*[f"t{i},{'abc'[i % 3]}" for i in range(12)])}),
    Case("D11", "data", "--ordinal with names that have no order", train("--ordinal", data="{case}/x.csv"),
         Rejects("--ordinal"), {"x.csv": csv(*[f"t{i},{('apple', 'pear')[i % 2]}" for i in range(20)])}),
    Case("D12", "data", "non-UTF-8 bytes in a CSV", train(data="{case}/x.csv"), Rejects("x.csv"),
         {"x.csv": b"text,label\nok,1\nd\xe9j\xe0 vu,0\n"}),
    Case("D13", "data", "corrupt parquet file", train(data="{case}/x.parquet"), Rejects("x.parquet"),
         {"x.parquet": b"not parquet at all"}),
    Case("D14", "data", "junk .tar.gz", train(data="{case}/x.tar.gz"), Rejects("x.tar.gz"),
         {"x.tar.gz": b"junk"}),
    Case("D15", "data", "an empty folder", train(data="{case}/empty"), Rejects("empty"), {"empty": None}),
    Case("D16", "data", "a CSV with 2 rows", train(data="{case}/x.csv"), Rejects("x.csv"),
         {"x.csv": csv("good film,1", "bad film,0")}),
    Case("D17", "data", "a CSV with only a header", train(data="{case}/x.csv"), Rejects("x.csv"),
         {"x.csv": csv()}),
    Case("D18", "data", "emoji, accents, CJK, Arabic, zero-width chars (valid, JSONL)",
         train(data="{case}/x.jsonl"), Accepts(creates="runs/sentitune/metrics.json"),
         {"x.jsonl": reviews_file(with_emoji)}),
    Case("D19", "data", "one ~216,000-character text (valid)", train(data="{case}/x.csv"),
         Accepts(creates="runs/sentitune/metrics.json"), {"x.csv": reviews_file(with_long_text)}),
    Case("D20", "data", "\\x85 (NEL) inside training texts (valid)", train(data="{case}/x.csv"),
         Accepts(creates="runs/sentitune/metrics.json"), {"x.csv": reviews_file(with_nel)}),
    Case("D21", "data", "predict --file with \\x85 inside 3 lines keeps 3 rows (valid)",
         ("predict", "{model}", "--file", "{case}/t.txt"), Accepts(json_lines=3),
         {"t.txt": "first review\x85 still the first\nsecond\x85review\nthird one\n\n"}),
    Case("D22", "data", "--test-data names a missing file", train("--test-data", "{case}/nope.csv",
                                                                  data="{case}/x.csv"),
         Rejects("nope.csv"), {"x.csv": reviews_file()}),
    Case("D23", "data", "malformed JSONL", train(data="{case}/x.jsonl"), Rejects("x.jsonl"),
         {"x.jsonl": '{"text": "fine", "label": 1}\n{"text": broken\n'}),
    Case("D24", "data", "--text-column body, which the data lacks", train("--text-column", "body"), Rejects("body")),
    Case("D25", "data", "--label-threshold 7 on named labels", train("--label-threshold", "7", data="{case}/x.csv"),
         Rejects("x.csv", "--label-threshold"), {"x.csv": csv(*[f"t{i},{('pos', 'neg')[i % 2]}" for i in range(20)])}),
    Case("D26", "data", "--train-per-class beyond the data", train("--train-per-class", "10000"),
         Rejects("per_class")),
    Case("D27", "data", "a Hub dataset id while offline", train(data="someone/no-such-dataset"),
         Rejects("someone/no-such-dataset")),
    Case("D28", "data", "a .tsv file that is comma-separated", train(data="{case}/x.tsv"), Rejects("x.tsv"),
         {"x.tsv": csv(*[f"t{i},{i % 2}" for i in range(10)])}),
    Case("D29", "data", "--data path with [x] in it (missing)", train(data="{case}/[x]/none.csv"), Rejects("[x]")),
    Case("D30", "data", "parquet folder whose test split has no label column", train(data="{case}/pq"),
         Rejects("pq", "label"), {"pq": parquet_without_test_labels}),
    # configs
    Case("C01", "config", "YAML `learning_rate: 1e-4` (valid)", train_with_yaml(),
         Accepts(creates="runs/sentitune/metrics.json"), {"c.yaml": "learning_rate: 1e-4\n"}),
    Case("C02", "config", "YAML `batch_size: sixteen`", train_with_yaml(), Rejects("c.yaml", "batch_size"),
         {"c.yaml": "batch_size: sixteen\n"}),
    Case("C03", "config", "YAML `learning_rate: [1, 2]`", train_with_yaml(), Rejects("c.yaml", "learning_rate"),
         {"c.yaml": "learning_rate: [1, 2]\n"}),
    Case("C04", "config", "--learning-rate -0.1", train("--learning-rate", "-0.1"), Rejects("learning-rate")),
    Case("C05", "config", "--batch-size 0", train("--batch-size", "0"), Rejects("batch-size")),
    Case("C06", "config", "--gradient-accumulation 0", train("--gradient-accumulation", "0"),
         Rejects("gradient-accumulation")),
    Case("C07", "config", "--eval-batch-size 0", train("--eval-batch-size", "0"), Rejects("eval-batch-size")),
    Case("C08", "config", "--scheduler zigzag", train("--scheduler", "zigzag"), Rejects("scheduler", "zigzag")),
    Case("C09", "config", "YAML `data:` as a scalar (a path, not a mapping)", train_with_yaml(),
         Rejects("c.yaml", "data"), {"c.yaml": "data: reviews.csv\n"}),
    Case("C10", "config", "--dropout 1.5", train("--dropout", "1.5"), Rejects("dropout")),
    Case("C11", "config", "--precision fp8", train("--precision", "fp8"), Rejects("precision", "fp8")),
    Case("C12", "config", "--epochs 0", train("--epochs", "0"), Rejects("epochs")),
    Case("C13", "config", "--max-steps 0", train("--max-steps", "0"), Rejects("max-steps")),
    Case("C14", "config", "--max-length 2", train("--max-length", "2"), Rejects("max-length")),
    Case("C15", "config", "--max-length 100000 (the model reads 512)", train("--max-length", "100000"),
         Rejects("max-length")),
    Case("C16", "config", "--warmup-ratio 5", train("--warmup-ratio", "5"), Rejects("warmup-ratio")),
    Case("C17", "config", "--name ../../x", train("--name", "../../x"), Rejects("name", "../../x")),
    Case("C18", "config", "--name .hidden", train("--name", ".hidden"), Rejects("name", ".hidden")),
    Case("C19", "config", "unknown YAML field `colour`", train_with_yaml(), Rejects("c.yaml", "colour"),
         {"c.yaml": "learning_rate: 1.0e-4\ncolour: blue\n"}),
    Case("C20", "config", "invalid YAML", train_with_yaml(), Rejects("c.yaml"),
         {"c.yaml": "learning_rate: [1e-4\nbatch_size: 8\n"}),
    Case("C21", "config", "--config names a missing file", train("--config", "{case}/missing.yaml"),
         Rejects("missing.yaml")),
    Case("C22", "config", "unknown preset", train("--preset", "nope"), Rejects("--preset", "nope")),
    Case("C23", "config", "--batch-size sixteen (not an int on the command line)", train("--batch-size", "sixteen"),
         Rejects("batch-size")),
    Case("C24", "config", "misspelt flag --learnig-rate", train("--learnig-rate", "1e-4"), Rejects("--learnig-rate")),
    Case("C25", "config", "YAML top level is a list", train_with_yaml(), Rejects("c.yaml"),
         {"c.yaml": "- learning_rate: 1.0e-4\n"}),
    Case("C26", "config", "--truncation middle", train("--truncation", "middle"), Rejects("truncation", "middle")),
    Case("C27", "config", "--selection-metric auc", train("--selection-metric", "auc"), Rejects("selection")),
    Case("C28", "config", "--validation-size 1.5", train("--validation-size", "1.5"), Rejects("validation-size")),
    Case("C29", "config", "--train-per-class 0", train("--train-per-class", "0"), Rejects("train-per-class")),
    # model folders
    Case("M01", "model", "--model names a missing folder", train("--model", "{case}/no-model"),
         Rejects("--model", "no-model")),
    Case("M02", "model", "model folder without tokenizer files", train("--model", "{case}/notok"),
         Rejects("--model", "notok"), {"notok": model_copy(drop_tokenizer)}),
    Case("M03", "model", "torn safetensors (first 100 bytes)", train("--model", "{case}/torn"),
         Rejects("--model", "torn"), {"torn": model_copy(tear_weights)}),
    Case("M04", "model", "weights only as pytorch_model.bin", train("--model", "{case}/binonly"),
         Rejects("--model", "binonly"), {"binonly": model_copy(weights_as_bin)}),
    Case("M05", "model", "an empty model folder", train("--model", "{case}/emptymodel"),
         Rejects("--model", "emptymodel"), {"emptymodel": None}),
    Case("M06", "model", "a Hub model id while offline", train("--model", "someone/not-here"),
         Rejects("--model", "someone/not-here")),
    Case("M07", "model", "config.json that is not JSON", train("--model", "{case}/badconfig"),
         Rejects("--model", "badconfig"), {"badconfig": model_copy(break_config)}),
    # run folders
    Case("R01", "run folder", "a finished run of the same name exists", train(),
         Rejects("runs/sentitune", "--overwrite"), {"runs/sentitune/metrics.json": "{}\n"}),
    Case("R02", "run folder", "an interrupted run (.partial) exists, no --resume", train(),
         Rejects(".sentitune.partial"), {"runs/.sentitune.partial/config.yaml": "name: sentitune\n"}),
    Case("R03", "run folder", "--resume with nothing to resume (killed before anything was written) starts the run",
         train("--resume"), Accepts(creates="runs/sentitune/metrics.json")),
    # search spaces (sentitune tune)
    Case("T01", "tune", "negative learning-rate bound", tune(), Rejects("learning_rate"),
         {"space.yaml": LR_SPACE % ("-1.0e-4", "1.0e-4", "")}),
    Case("T02", "tune", "low > high", tune(), Rejects("learning_rate"),
         {"space.yaml": LR_SPACE % ("1.0e-3", "1.0e-4", "")}),
    Case("T03", "tune", "log scale with low 0", tune(), Rejects("learning_rate"),
         {"space.yaml": LR_SPACE % ("0", "1.0e-4", ", log: true")}),
    Case("T04", "tune", "categorical without choices", tune(), Rejects("batch_size"),
         {"space.yaml": "batch_size: {type: categorical}\n"}),
    Case("T05", "tune", "unknown field in the space", tune(), Rejects("colour"),
         {"space.yaml": "colour: {type: float, low: 0, high: 1}\n"}),
    Case("T06", "tune", "`low: 1e-5` written the YAML way (valid; 1 trial of 2 steps)", tune(),
         Accepts(creates="study/best.yaml"), {"space.yaml": LR_SPACE % ("1e-5", "1e-4", ", log: true")}),
    Case("T07", "tune", "--space names a missing file", tune(), Rejects("--space", "space.yaml")),
    Case("T08", "tune", "invalid YAML space", tune(), Rejects("space.yaml"),
         {"space.yaml": "learning_rate: {type: float, low: 1\n"}),
    Case("T09", "tune", "--pruner nope", tune("--pruner", "nope"), Rejects("--pruner", "nope"),
         {"space.yaml": LR_SPACE % ("1e-5", "1e-4", "")}),
    Case("T10", "tune", "--n-trials 0", tune("--n-trials", "0"), Rejects("--n-trials"),
         {"space.yaml": LR_SPACE % ("1e-5", "1e-4", "")}),
    Case("T11", "tune", "--storage with an unknown scheme", tune("--storage", "ftp://host/x"),
         Rejects("--storage"), {"space.yaml": LR_SPACE % ("1e-5", "1e-4", "")}),
    # predict, evaluate, export, serve
    Case("P01", "predict", "predict on a missing run", ("predict", "{case}/nope", "a fine film"), Rejects("nope")),
    Case("P02", "predict", "--file with non-UTF-8 bytes", ("predict", "{model}", "--file", "{case}/bad.txt"),
         Rejects("--file", "bad.txt"), {"bad.txt": b"caf\xe9 was great\n"}),
    Case("P03", "predict", "--batch-size -1", ("predict", "{model}", "a fine film", "--batch-size", "-1"),
         Rejects("--batch-size")),
    Case("P04", "predict", "--backend tflite", ("predict", "{model}", "a fine film", "--backend", "tflite"),
         Rejects("--backend", "tflite")),
    Case("P05", "predict", "--backend onnx before `sentitune export`",
         ("predict", "{model}", "a fine film", "--backend", "onnx"), Rejects("--backend", "export")),
    Case("P06", "predict", "evaluate on a .partial run folder", ("evaluate", "{case}/runs/.r.partial"),
         Rejects(".r.partial"), {"runs/.r.partial/config.yaml": "name: r\n"}),
    Case("P07", "predict", "predict on a missing path with [x] in it (brackets kept)",
         ("predict", "{case}/[x]/run", "a fine film"), Rejects("[x]/run")),
    Case("P08", "predict", "predict without texts or --file", ("predict", "{model}"), Rejects("--file")),
    Case("P09", "predict", "--file names a missing file", ("predict", "{model}", "--file", "{case}/missing.txt"),
         Rejects("--file", "missing.txt")),
    Case("P10", "predict", "evaluate on a missing run", ("evaluate", "{case}/nope"), Rejects("nope")),
    Case("P11", "predict", "evaluate --backend onnx without --data", ("evaluate", "{case}/nope", "--backend", "onnx"),
         Rejects("--backend", "--data")),
    Case("P12", "predict", "export a missing run", ("export", "{case}/nope"), Rejects("nope")),
    Case("P13", "predict", "serve a missing run", ("serve", "{case}/nope", "--port", "0"), Rejects("nope")),
    Case("P14", "predict", "predict an emoji-only text (valid)", ("predict", "{model}", "🎬🍿😴"),
         Accepts(json_lines=1)),
    # HTTP (in-process)
    Case("H01", "http", "2 MB body (limit 1 MiB)", post_two_megabytes, Answers(413, short=True)),
    Case("H02", "http", "`texts` not a list", post_texts_not_a_list, Answers(422, not_echoed="not a list")),
    Case("H03", "http", "`texts` an empty list", post_empty_list, Answers(422)),
    Case("H04", "http", "lone surrogate \\ud800 in a text", post_lone_surrogate, Answers(200)),
    Case("H05", "http", "a 20,001-character text", post_long_text, Answers(422, says="20000")),
    Case("H06", "http", "every slot in flight (app.state.slots exhausted)", post_when_full,
         Answers(503, says="busy")),
    Case("H07", "http", "body that is not valid JSON", post_broken_json, Answers(422, not_echoed="unterminated")),
    Case("H08", "http", "1,025 texts (limit 1,024)", post_too_many_texts, Answers(422)),
    Case("H09", "http", "GET /health", get_health, Answers(200, says='"status":"ok"')),
]


# ---------------------------------------------------------------- the runner


@dataclass
class Row:
    case: Case
    actual: str
    problems: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        return "as expected" if self.ok else "**NOT as expected**: " + "; ".join(self.problems)


def write_files(folder: Path, files: dict[str, Content], ws: Workspace) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            content(path, ws)


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under `folder` with (size, mtime) for files: what a rejected command must leave unchanged."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else ()
            for p in folder.rglob("*")}


def fill(arg: str, ws: Workspace, folder: Path) -> str:
    return arg.replace("{model}", str(ws.model)).replace("{data}", str(ws.data)).replace("{case}", str(folder))


def run_cli(case: Case, ws: Workspace, folder: Path) -> Ran:
    argv = [sys.executable, "-m", "sentitune", *(fill(a, ws, folder) for a in case.run)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "SENTITUNE_CACHE": str(ws.root / "cache" / case.id)}
    before = snapshot(folder)
    proc = subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the case's own process group
        out, err = proc.communicate()
        timed_out = True
    after = snapshot(folder)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    out, err = (short_paths(text, ws, folder) for text in (out, err))
    return Ran(None if timed_out else proc.returncode, out, err, folder, changed, timed_out)


def short_paths(text: str, ws: Workspace, folder: Path) -> str:
    """Output with the scratch paths written as {case}, {model} and {data} (as in the case's arguments)."""
    return text.replace(str(folder), "{case}").replace(str(ws.model), "{model}").replace(str(ws.data), "{data}")


def run_case(case: Case, ws: Workspace) -> Row:
    folder = ws.root / "cases" / case.id
    folder.mkdir(parents=True)
    started = time.perf_counter()
    try:
        write_files(folder, case.files, ws)
        result = case.run(ws) if callable(case.run) else run_cli(case, ws, folder)
        actual, problems = case.expected.judge(result)
    except Exception as exc:  # the harness or an in-process call failed: recorded, not hidden
        actual, problems = f"raised {type(exc).__name__}: {code(clip(str(exc)))}", [f"raised {type(exc).__name__}"]
    return Row(case, actual, problems, time.perf_counter() - started)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def git_revision() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return sha + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def summary(rows: list[Row]) -> str:
    line = f"{len(rows)} cases, {sum(r.ok for r in rows)} as expected"
    odd = [r.case.id for r in rows if not r.ok]
    return line + (f" (not as expected: {', '.join(odd)})" if odd else "")


def kept_generated_cases(path: Path) -> str:
    """The generated-cases section of an existing report (from its start marker on), to keep below the corpus."""
    from generated_cases import START

    text = path.read_text() if path.is_file() else ""
    return "\n" + text[text.index(START):] if START in text else ""


def report(rows: list[Row], only: list[str] | None, command: str, machine: str, wall_s: float) -> str:
    lines = ["# Reliability: bad input and edge cases", ""]
    if only:
        lines += [f"**PARTIAL run: only {', '.join(only)} of the {len(CASES)} cases in the corpus were run.** "
                  "Run `python benchmarks/reliability.py` for the whole corpus.", ""]
    lines += [
        f"Written by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {git_revision()}, "
        f"in {wall_s:.0f} s; {machine}.",
        "",
        "Every CLI case is a subprocess `python -m sentitune ...` (HF_HUB_OFFLINE=1, 120 s timeout) in its own folder "
        "(also its --output-dir and --study), on a tiny random BERT and tiny synthetic reviews; the HTTP cases call "
        "`sentitune.inference.serve.create_app` through FastAPI's TestClient. Bad input should exit 2 with exactly one "
        "non-empty stderr line naming the file/flag/field, no traceback, and leave the case folder unchanged (no "
        "run, `.partial` or study folder); valid edge cases should exit 0.",
        "",
        f"**{summary(rows)}.**",
        "",
        "| id | area | case | expected | actual | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append("| " + " | ".join(cell(c) for c in (r.case.id, r.case.area, r.case.description,
                                                           r.case.expected.text, r.actual, r.verdict)) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="Comma-separated case ids to run (the report is marked partial).")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md", help="Markdown report path.")
    parser.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="CLI cases run at once (default: CPU cores, at most 4).")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder (its path is printed).")
    parser.add_argument("--list", action="store_true", help="List the corpus and exit without running anything.")
    args = parser.parse_args()

    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    only = [i.strip() for i in args.only.split(",") if i.strip()] if args.only else None
    unknown = sorted(set(only or []) - set(ids))
    if unknown:
        parser.error(f"--only: unknown case id(s) {', '.join(unknown)}; see --list.")
    cases = [c for c in CASES if only is None or c.id in only]
    if args.list:
        for c in cases:
            print(f"{c.id:4} {c.area:10} {c.description}  ->  {c.expected.text}")
        print(f"{len(cases)} cases")
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import common

    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="sentitune-reliability-"))
    try:
        print(f"building the tiny model and data in {scratch} ...", flush=True)
        ws = build_workspace(scratch)
        rows: dict[str, Row] = {}

        def done(row: Row) -> None:
            rows[row.case.id] = row
            print(f"{row.case.id:4} {row.seconds:6.1f} s  {row.verdict}  | {row.actual}", flush=True)

        for case in (c for c in cases if callable(c.run)):  # in-process HTTP cases, one at a time
            done(run_case(case, ws))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(run_case, c, ws) for c in cases if not callable(c.run)]
            for future in as_completed(futures):
                done(future.result())
        ordered = [rows[c.id] for c in cases]
        command = shlex.join(["python", "benchmarks/reliability.py", *sys.argv[1:]])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        kept = kept_generated_cases(args.out)  # benchmarks/generated_cases.py's part, written by that script
        args.out.write_text(report(ordered, only, command, common.machine(), time.perf_counter() - started) + kept)
        print(f"{summary(ordered)}; wrote {args.out}")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
