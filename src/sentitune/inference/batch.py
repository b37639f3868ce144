"""Batch scoring of large files: streamed in chunks, written atomically, resumable after a kill.

`score_file(model_dir, "reviews.parquet", "scored.parquet")` reads the input a chunk at a time (parquet row
batches, CSV/TSV chunks, JSON or text lines), keeps every input column and adds `label`, `confidence` and one
`prob_<label>` column per class. Each scored chunk becomes a part file in a hidden folder beside the output
(`.<output name>.parts/`); the output is assembled from the parts and renamed into place at the end, so it
appears complete or not at all, and `resume=True` skips the parts a killed job had finished.
CSV/TSV columns are kept verbatim, as text; missing or blank texts get an empty label and empty probabilities.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.errors import SentituneError
from ..core.io import RESUME_AFTER_FREEING, atomic_dir, atomic_write_text, disk_space_checked, exclusive_lock
from ..core.preemption import RESUME, Preemption, preemptible

DEFAULT_CHUNK_SIZE = 10_000
STDIO = "-"
INPUT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt")
OUTPUT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
MANIFEST = "manifest.json"
PART_GLOB = "part-*.parquet"
_READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class Job:
    """What a batch job reads and writes, checked before any work is done."""

    input: Path | None  # None: JSON lines from stdin
    output: Path | None  # None: JSON lines to stdout
    text_column: str
    chunk_size: int

    @property
    def input_name(self) -> str:
        return "stdin" if self.input is None else str(self.input)

    @property
    def parts_dir(self) -> Path:
        return self.output.with_name(f".{self.output.name}.parts")


@preemptible(lambda model_dir, input, output, *args, **kwargs: f"--output {output}",
             lambda model_dir, input, output, *args, **kwargs: RESUME if str(output) != STDIO else
             "stdout cannot be resumed: run it again to score from the start")
@disk_space_checked(lambda model_dir, input, output, *args, **kwargs: (
    f"--output {output}", None if str(output) == STDIO else Path(output).parent), RESUME_AFTER_FREEING)
def score_file(model_dir: str | Path, input: str | Path, output: str | Path, text_column: str = "text",
               chunk_size: int = DEFAULT_CHUNK_SIZE, batch_size: int | str | None = None, backend: str = "auto",
               resume: bool = False, overwrite: bool = False, windows: bool = False,
               progress: bool = True) -> dict:
    """Score every text of `input` into `output` ("-" for JSON lines on stdin/stdout); returns a summary dict.

    One job at a time writes an output (a second one is refused in one line). SIGTERM stops the job keeping the
    chunks already scored (exit code 143, one line on stderr): `resume=True` goes on from them; an output is never
    left half-written."""
    job = checked_job(input, output, text_column, chunk_size, resume, overwrite)
    if job.output is None:
        return _score(job, model_dir, batch_size, backend, resume, windows, progress)
    busy = (f"--output {job.output}: another sentitune job is writing it now; wait for it to finish or choose "
            "another --output.")
    with exclusive_lock(job.output.with_name(f".{job.output.name}.lock"), busy):
        job = checked_job(input, output, text_column, chunk_size, resume, overwrite)  # again, under the lock
        return _score(job, model_dir, batch_size, backend, resume, windows, progress)


def _score(job: Job, model_dir: str | Path, batch_size: int | str | None, backend: str, resume: bool,
           windows: bool, progress: bool) -> dict:
    from ..models.loading import model_folder

    start = time.perf_counter()
    model_dir = model_folder(model_dir)
    chunks = _chunks(job)
    first = next(chunks)
    _check_text_column(first, job)
    model = _load_model(model_dir, backend)
    if batch_size == "auto":  # measured on the first texts of the input
        from .batch_size import fastest_batch_size

        batch_size, _ = fastest_batch_size(model, [str(t) for t in first.column(job.text_column).to_pylist()[:512]
                                                   if t is not None] or ["."])
    scorer = Scorer(model, batch_size, windows)
    scorer.check_columns(first, job)
    check_writable(first.schema, job)
    load_s = time.perf_counter() - start
    done = prepared_parts(job, manifest_of(job, model_dir, backend, windows), resume)
    try:
        with progress_bar(progress, job) as bar:
            rows = score_chunks(job, _chained(first, chunks), scorer, done, bar)
    except BaseException:
        _drop_empty_parts(job)
        raise
    if job.output is not None:
        assemble(job, scorer.names)
    seconds = time.perf_counter() - start
    return {"input": job.input_name, "output": "stdout" if job.output is None else str(job.output),
            "rows": rows, "scored": scorer.scored, "empty": scorer.empty, "parts_reused": len(done),
            "labels": list(scorer.names), "seconds": seconds, "load_s": load_s, "score_s": scorer.seconds,
            "texts_per_s": scorer.scored / scorer.seconds if scorer.seconds else None}


def checked_job(input: str | Path, output: str | Path, text_column: str, chunk_size: int, resume: bool,
         overwrite: bool) -> Job:
    """The checked job: known formats, an existing input, and an output that may be written."""
    if chunk_size < 1:
        raise SentituneError(f"--chunk-size {chunk_size}: must be at least 1.")
    source = None if str(input) == STDIO else Path(input)
    target = None if str(output) == STDIO else Path(output)
    if source is not None:
        if source.suffix.lower() not in INPUT_SUFFIXES:
            raise SentituneError(f"--input {source}: unknown format '{source.suffix}'; use "
                                 f"{', '.join(INPUT_SUFFIXES)} or - for JSON lines on stdin.")
        if not source.is_file():
            raise SentituneError(f"--input {source}: file not found.")
    if target is None:
        if resume:
            raise SentituneError("--resume: needs an --output file (stdout cannot be resumed).")
        return Job(source, None, text_column, chunk_size)
    if target.suffix.lower() not in OUTPUT_SUFFIXES:
        raise SentituneError(f"--output {target}: unknown format '{target.suffix}'; use "
                             f"{', '.join(OUTPUT_SUFFIXES)} or - for JSON lines on stdout.")
    if resume and source is None:
        raise SentituneError("--resume: stdin cannot be read again; pass --input FILE.")
    if source is not None and source.resolve() == target.resolve():
        raise SentituneError(f"--output {target}: is the input file; write to another file.")
    job = Job(source, target, text_column, chunk_size)
    if target.exists() and not overwrite and not (resume and job.parts_dir.is_dir()):
        raise SentituneError(f"--output {target}: already exists; pass --overwrite to replace it.")
    return job


# --- the work folder: parts and the manifest that ties them to one input, model and settings -------------


def manifest_of(job: Job, model_dir: Path, backend: str, windows: bool) -> dict:
    """What the parts depend on: the input file (size and time), the model's files, and the settings."""
    stat = job.input.stat() if job.input else None
    return {"input": str(job.input.resolve()) if job.input else STDIO,
            "input_size": stat.st_size if stat else None, "input_mtime_ns": stat.st_mtime_ns if stat else None,
            "model": str(model_dir.resolve()), "model_files": _file_stamps(model_dir),
            "backend": backend, "windows": windows, "text_column": job.text_column, "chunk_size": job.chunk_size}


def _file_stamps(folder: Path) -> dict[str, list[int]]:
    """[size, mtime_ns] of each file in `folder` and its onnx/ graphs: a re-saved model changes them."""
    files = [p for p in folder.glob("*") if p.is_file()] + [p for p in folder.glob("onnx/*") if p.is_file()]
    return {str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(files)}


def prepared_parts(job: Job, manifest: dict, resume: bool) -> set[int]:
    """Indices of the chunks already scored (resume), after creating or checking the parts folder."""
    if job.output is None:
        return set()
    parts = job.parts_dir
    if parts.is_dir() and not resume:
        raise SentituneError(f"--output {job.output}: {parts} holds an unfinished job; pass --resume to continue "
                             "it, or delete that folder to start over.")
    if not parts.is_dir():
        with atomic_dir(parts) as tmp:
            atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=1))
        return set()
    _check_manifest(parts, manifest)
    for stale in parts.glob(".*.tmp-*"):  # a part or output being written when the job was killed
        stale.unlink()
    return {_part_index(p) for p in parts.glob(PART_GLOB)}


_CHANGES = {"input_size": "another version of the input (it changed since)",
            "input_mtime_ns": "another version of the input (it changed since)",
            "model_files": "another version of the model (it was saved again since)"}


def _check_manifest(parts: Path, manifest: dict) -> None:
    try:
        saved = json.loads((parts / MANIFEST).read_text())
    except (OSError, ValueError):
        saved = {}
    changed = next((k for k in [*manifest, *saved] if saved.get(k) != manifest.get(k)), None)  # "engine": ray
    if changed:
        what = _CHANGES.get(changed, f"another {changed.replace('_', ' ')} ({str(saved.get(changed))[:80]})")
        raise SentituneError(f"--resume: {parts} was made for {what}; delete it and run without --resume to "
                             "start over.")



def _part_path(job: Job, index: int) -> Path:
    return job.parts_dir / f"part-{index:05d}.parquet"


def _part_index(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


def write_part(job: Job, index: int, table: pa.Table) -> None:
    """Write a temporary part and rename it: a part that exists is complete."""
    final = _part_path(job, index)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


# --- reading: chunks of at most `chunk_size` rows as arrow tables ---------------------------------------


def _chunks(job: Job) -> Iterator[pa.Table]:
    """The input as arrow tables of at most `chunk_size` rows; at least one (maybe empty) table."""
    suffix = ".jsonl" if job.input is None else job.input.suffix.lower()
    reader = {".parquet": _parquet_chunks, ".csv": _csv_chunks, ".tsv": _csv_chunks,
              ".txt": _text_chunks}.get(suffix, _json_chunks)
    empty = True
    for table in reader(job):
        empty = False
        yield table
    if empty:
        yield pa.table({job.text_column: pa.array([], pa.string())})


def _parquet_chunks(job: Job) -> Iterator[pa.Table]:
    try:
        batches = pq.ParquetFile(job.input).iter_batches(batch_size=job.chunk_size)
        yield from _rechunked(batches, job.chunk_size)
    except (pa.ArrowException, OSError) as exc:
        raise SentituneError(f"--input {job.input}: not a readable parquet file ({first_line(exc)}).") from None


def _rechunked(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Tables of exactly `size` rows (the last one shorter): row groups smaller than a chunk are joined."""
    pending, rows = [], 0
    for batch in batches:
        pending.append(batch)
        rows += len(batch)
        while rows >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size)
            rest = table.slice(size)
            pending, rows = rest.to_batches(), len(rest)
    if rows:
        yield pa.Table.from_batches(pending)


def _csv_chunks(job: Job) -> Iterator[pa.Table]:
    import pandas as pd

    sep = "\t" if job.input.suffix.lower() == ".tsv" else ","
    try:
        with pd.read_csv(job.input, sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                         encoding="utf-8", chunksize=job.chunk_size) as reader:
            for frame in reader:
                yield pa.Table.from_pandas(frame, preserve_index=False)
    except UnicodeDecodeError:
        raise SentituneError(f"--input {job.input}: invalid UTF-8; re-encode the file as UTF-8.") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise SentituneError(f"--input {job.input}: cannot parse as {job.input.suffix[1:].upper()} "
                             f"({first_line(exc)}).") from None


def _lines(job: Job) -> Iterator[tuple[int, str]]:
    """(line number, line) of the input, split on newlines only; blank lines skipped."""
    stream = sys.stdin if job.input is None else open(job.input, "rb")
    try:
        yield from numbered_lines(getattr(stream, "buffer", stream), job)
    finally:
        if job.input is not None:
            stream.close()


def numbered_lines(lines: Iterable[bytes | str], job: Job) -> Iterator[tuple[int, str]]:
    """(line number, line) of raw lines as a binary file yields them (also in the Ray engine's read tasks): UTF-8
    decoded, line ends stripped, blank lines skipped."""
    for number, raw in enumerate(lines, 1):
        line = _decoded(raw, job, number) if isinstance(raw, bytes) else raw
        line = line.rstrip("\n").rstrip("\r")
        if line.strip():
            yield number, line


def _decoded(raw: bytes, job: Job, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SentituneError(f"--input {job.input_name}: invalid UTF-8 on line {number} (byte {exc.start} of "
                             "the line); re-encode the file as UTF-8.") from None


def _text_chunks(job: Job) -> Iterator[pa.Table]:
    texts = []
    for _, line in _lines(job):
        texts.append(line)
        if len(texts) == job.chunk_size:
            yield pa.table({job.text_column: pa.array(texts, pa.string())})
            texts = []
    if texts:
        yield pa.table({job.text_column: pa.array(texts, pa.string())})


def _json_chunks(job: Job) -> Iterator[pa.Table]:
    records, first = [], 0
    for number, line in _lines(job):
        records.append(_record(line, job, number))
        first = first or number
        if len(records) == job.chunk_size:
            yield _records_table(records, job, first, number)
            records, first = [], 0
    if records:
        yield _records_table(records, job, first, number)


def _record(line: str, job: Job, number: int) -> dict:
    try:
        record = json.loads(line)
    except ValueError as exc:
        hint = " (a JSON array: write one object per line)" if number == 1 and line.lstrip().startswith("[") else ""
        raise SentituneError(f"--input {job.input_name}: line {number} is not JSON{hint} ({first_line(exc)}).") \
            from None
    if not isinstance(record, dict):
        kind = "array" if isinstance(record, list) else type(record).__name__
        raise SentituneError(f"--input {job.input_name}: line {number} is a JSON {kind}, not an object; write "
                             "one {\"text\": ...} object per line (JSON lines).")
    return record


def _records_table(records: list[dict], job: Job, first: int, last: int) -> pa.Table:
    try:
        return pa.Table.from_struct_array(pa.array(records))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SentituneError(f"--input {job.input_name}: lines {first}-{last} mix value types in one field "
                             f"({first_line(exc)}); give each field one type.") from None


def first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]


def _chained(first: pa.Table, rest: Iterator[pa.Table]) -> Iterator[pa.Table]:
    yield first
    yield from rest


def _check_text_column(table: pa.Table, job: Job) -> None:
    """One-line errors for a missing text column or one that does not hold text."""
    if job.text_column not in table.column_names:
        raise SentituneError(f"--input {job.input_name}: no column '{job.text_column}'; columns found: "
                             f"{table.column_names}; pass --text-column.")
    kind = table.schema.field(job.text_column).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise SentituneError(f"--input {job.input_name}: column '{job.text_column}' holds {kind} values, not "
                             "text; pass the text column with --text-column.")


def row_estimate(job: Job) -> int | None:
    """Rows to expect: exact for parquet (metadata), newlines for text formats (quoted newlines in a CSV
    make it an overestimate, corrected at the end); None for stdin."""
    if job.input is None:
        return None
    if job.input.suffix.lower() == ".parquet":
        try:
            return pq.ParquetFile(job.input).metadata.num_rows
        except (pa.ArrowException, OSError):
            return None
    with open(job.input, "rb") as file:
        newlines = sum(block.count(b"\n") for block in iter(lambda: file.read(_READ_BLOCK), b""))
    return max(newlines - (job.input.suffix.lower() in {".csv", ".tsv"}), 0)


# --- scoring --------------------------------------------------------------------------------------------


def _load_model(model_dir: Path, backend: str):
    from .predict import SentimentModel

    return SentimentModel.from_pretrained(model_dir, backend=backend)


def result_columns(names: tuple[str, ...]) -> list[str]:
    """The columns scoring adds: label, confidence and prob_<name> per class (in the model's class order)."""
    return ["label", "confidence", *(f"prob_{n}" for n in names)]


class Scorer:
    """Scores chunks with one model; counts texts and the seconds spent in the model."""

    def __init__(self, model, batch_size: int | None, windows: bool):
        self.model, self.batch_size, self.windows = model, batch_size, windows
        self.names = tuple(model.labels.names)
        self.columns = result_columns(self.names)
        self.scored = self.empty = 0
        self.seconds = 0.0

    def check_columns(self, table: pa.Table, job: Job) -> None:
        """One-line errors for a chunk without its text column or with columns the results would overwrite."""
        _check_text_column(table, job)
        clash = [c for c in self.columns if c in table.column_names]
        if clash:
            raise SentituneError(f"--input {job.input_name}: column(s) {clash} would be overwritten by the "
                                 "results; rename or drop them in the input.")

    def __call__(self, table: pa.Table, job: Job) -> pa.Table:
        """`table` with the result columns appended (empty ones where the text is missing or blank)."""
        self.check_columns(table, job)
        texts = table.column(job.text_column).to_pylist()
        keep = np.array([isinstance(t, str) and bool(t.strip()) for t in texts], dtype=bool)
        probs = np.zeros((len(texts), len(self.names)), dtype=np.float32)
        if keep.any():
            start = time.perf_counter()
            probs[keep] = self.model.predict_proba([t for t, k in zip(texts, keep) if k], self.batch_size,
                                                   self.windows)
            self.seconds += time.perf_counter() - start
        self.scored += int(keep.sum())
        self.empty += int((~keep).sum())
        return with_results(table, probs, keep, self.names, self.columns)


def with_results(table: pa.Table, probs: np.ndarray, keep: np.ndarray, names: tuple[str, ...],
                  columns: list[str]) -> pa.Table:
    """`table` with label, confidence and the probabilities appended; null where `keep` is False."""
    missing = ~keep
    labels = pa.array([names[i] if k else None for i, k in zip(probs.argmax(1).tolist(), keep)], pa.string())
    values = [labels, pa.array(probs.max(1), pa.float32(), mask=missing),
              *(pa.array(probs[:, k], pa.float32(), mask=missing) for k in range(len(names)))]
    for name, value in zip(columns, values):
        table = table.append_column(name, value)
    return table


def score_chunks(job: Job, chunks: Iterator[pa.Table], scorer: Scorer, done: set[int], bar: "_NoBar") -> int:
    """Score each chunk not already done into its part (or straight to stdout); returns the rows read."""
    rows, written, stop = 0, [0], Preemption.active()
    if stop is not None:  # SIGTERM between chunks or while one is scored keeps the parts written
        stop.progress = lambda: (f"{len(list(job.parts_dir.glob(PART_GLOB)))} chunk(s) of {job.chunk_size:,} rows "
                                 f"saved in {job.parts_dir}" if job.output is not None else
                                 f"{written[0]:,} rows were written to stdout as whole lines")
    for index, table in enumerate(chunks):
        rows += len(table)
        if index in done:
            bar.skip(len(table))
            continue
        scored = scorer(table, job)
        if job.output is None:
            with stop.deferred() if stop is not None else contextlib.nullcontext():  # whole lines only
                _write_json_lines(scored, sys.stdout)
                sys.stdout.flush()
                written[0] += len(scored)
            if stop is not None and stop.requested:
                raise stop.stopped(stop.progress())
        else:
            write_part(job, index, scored)
        bar.advance(len(table))
    bar.finish(rows)
    return rows


def _drop_empty_parts(job: Job) -> None:
    """Remove the parts folder of a job that failed before finishing any part (nothing there to resume)."""
    if job.output is not None and job.parts_dir.is_dir() and not any(job.parts_dir.glob(PART_GLOB)):
        shutil.rmtree(job.parts_dir, ignore_errors=True)


# --- writing the output from the parts ------------------------------------------------------------------


def assemble(job: Job, names: tuple[str, ...]) -> None:
    """Write the output from the parts into a temporary file in the parts folder, rename it into place, and
    remove the parts folder."""
    parts = sorted(job.parts_dir.glob(PART_GLOB), key=_part_index)
    schema = _output_schema(parts, result_columns(names), job)
    tmp = job.parts_dir / f".{job.output.name}.tmp-{os.getpid()}"
    suffix = job.output.suffix.lower()
    try:
        if suffix == ".parquet":
            _write_parquet(parts, schema, tmp)
        elif suffix == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as file:
                for part in parts:
                    _write_json_lines(_conformed(pq.read_table(part), schema), file)
        else:
            _write_csv(parts, schema, tmp, "\t" if suffix == ".tsv" else ",", job)
        os.replace(tmp, job.output)
    finally:
        tmp.unlink(missing_ok=True)
    shutil.rmtree(job.parts_dir, ignore_errors=True)


def _output_schema(parts: list[Path], results: list[str], job: Job) -> pa.Schema:
    """One schema for every part (a JSON field may be missing, or int in one chunk and float in another),
    the input's columns first and the results last."""
    try:
        schema = pa.unify_schemas([pq.read_schema(p).remove_metadata() for p in parts],
                                  promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SentituneError(f"--input {job.input_name}: a column holds different types in different rows "
                             f"({first_line(exc)}); give each column one type.") from None
    fields = [f for f in schema if f.name not in results] + [schema.field(n) for n in results]
    return pa.schema(fields)


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with `schema`'s columns in its order: missing ones null, others cast to the common type."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _write_parquet(parts: list[Path], schema: pa.Schema, path: Path) -> None:
    with pq.ParquetWriter(path, schema) as writer:
        for part in parts:
            writer.write_table(_conformed(pq.read_table(part), schema))


def check_writable(schema: pa.Schema, job: Job) -> None:
    """A CSV/TSV output cannot hold lists or objects (checked on the first chunk, and again before writing)."""
    nested = [f.name for f in schema if pa.types.is_nested(f.type)]
    if nested and job.output is not None and job.output.suffix.lower() in {".csv", ".tsv"}:
        raise SentituneError(f"--output {job.output}: column(s) {nested} hold lists or objects, which "
                             f"{job.output.suffix[1:].upper()} cannot write; use .jsonl or .parquet.")


def _write_csv(parts: list[Path], schema: pa.Schema, path: Path, delimiter: str, job: Job) -> None:
    import pyarrow.csv as pcsv

    check_writable(schema, job)
    with open(path, "wb") as file:
        for index, part in enumerate(parts):
            options = pcsv.WriteOptions(include_header=index == 0, delimiter=delimiter)
            pcsv.write_csv(_conformed(pq.read_table(part), schema), file, options)


# Line breaks json.dumps leaves raw but str.splitlines() (and other readers) split at: escaped, one row a line.
_LINE_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}


def _write_json_lines(table: pa.Table, file) -> None:
    for batch in table.to_batches(max_chunksize=1024):
        file.write("".join(json.dumps(row, ensure_ascii=False, default=str).translate(_LINE_BREAKS) + "\n"
                           for row in batch.to_pylist()))


# --- progress on stderr ---------------------------------------------------------------------------------


class _NoBar:
    def skip(self, rows: int) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass

    def finish(self, rows: int) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc) -> None:
        pass


class _Bar(_NoBar):
    """A rich progress bar on stderr: texts done, texts/s and time left (when the total is known). The rate
    counts texts scored by this process only, so parts skipped on --resume do not inflate it."""

    def __init__(self, total: int | None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), console=Console(stderr=True))
        self.task = self.progress.add_task("scoring", total=total, rate="")
        self.total, self.done, self.scored, self.start = total, 0, 0, time.perf_counter()

    def skip(self, rows: int) -> None:
        self.done += rows
        self.progress.update(self.task, completed=self.done)
        self.start = time.perf_counter()

    def advance(self, rows: int) -> None:
        self.done, self.scored = self.done + rows, self.scored + rows
        self.progress.update(self.task, completed=self.done, rate=self._rate())

    def _rate(self) -> str:
        speed = self.scored / max(time.perf_counter() - self.start, 1e-9)
        left = f", {_clock((self.total - self.done) / speed)} left" if self.total and self.done < self.total else ""
        return f"{speed:,.0f} texts/s{left}"

    def finish(self, rows: int) -> None:
        self.total = rows
        self.progress.update(self.task, total=rows, completed=rows, rate=self._rate() if self.scored else "")

    def __enter__(self) -> "_Bar":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def progress_bar(enabled: bool, job: Job) -> _NoBar:
    return _Bar(row_estimate(job)) if enabled else _NoBar()
