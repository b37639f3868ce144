"""Batch scoring on Ray Data: `sentitune predict RUN --input F --output F --engine ray`.

The local engine's job (`inference.batch`) with the scoring spread over a Ray cluster: Ray Data reads the input in
blocks, a fixed pool of `workers` actors, each holding one model, scores them with the local engine's scorer
(`batch.Scorer`: the same result columns), and this process takes the scored blocks back in input order and
writes them as the local engine does (parts in `.<output>.parts/`, assembled into one output file renamed into
place, or JSON lines on stdout). Ray Data's own writers are not used: in Ray 2.60 they wrote rows out of input
order even with `preserve_order` set, and scoring is slow enough that one writer keeps up with many actors.
Files are parsed as the local engine parses them (CSV/TSV cells as text, text files split on newlines only);
JSON lines types are Arrow's. A failed job leaves nothing behind; it does not resume. On a cluster, the model
folder and the input must be readable from every node (shared storage); the output is written by this process.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..core.errors import SentituneError
from ..core.extras import require
from .batch import (
    DEFAULT_CHUNK_SIZE,
    STDIO,
    Job,
    Scorer,
    assemble,
    check_writable,
    checked_job,
    first_line,
    manifest_of,
    numbered_lines,
    prepared_parts,
    progress_bar,
    result_columns,
    row_estimate,
    score_chunks,
    with_results,
    write_part,
)

DEFAULT_WORKERS = 2


def score_file_ray(model_dir: str | Path, input: str | Path, output: str | Path, text_column: str = "text",
                   chunk_size: int = DEFAULT_CHUNK_SIZE, batch_size: int | None = None, backend: str = "auto",
                   overwrite: bool = False, windows: bool = False, progress: bool = True,
                   address: str | None = None, workers: int = DEFAULT_WORKERS, threads: int | None = None) -> dict:
    """Score every text of `input` into `output` ("-": JSON lines on stdout) on Ray (`address`: None starts a
    local instance, "auto" joins this node's cluster) with `workers` actors of `threads` torch threads each.
    Returns the local engine's summary, with the Ray settings."""
    from ..models.loading import model_folder

    start = time.perf_counter()
    job = _ray_job(input, output, text_column, chunk_size, overwrite, workers, threads)
    model_dir = model_folder(model_dir)
    ray = _ray()
    rows_per_call, block_bytes = _blocks(job, workers)
    prepared_parts(job, {**manifest_of(job, model_dir, backend, windows), "engine": "ray"}, resume=False)
    tally = _Tally()
    try:
        with _ray_session(ray, address), _data_context(ray, block_bytes), _user_errors(job), \
                progress_bar(progress, job) as bar:
            cpus, threads = _actor_resources(ray, workers, threads)
            actor = {"model_dir": str(model_dir.resolve()), "backend": backend, "threads": threads,
                     "batch_size": batch_size, "windows": windows, "job": job}
            scored = _dataset(ray, job).map_batches(_ModelActor, batch_format="pyarrow", batch_size=rows_per_call,
                                                    compute=ray.data.ActorPoolStrategy(size=workers),
                                                    num_cpus=cpus, fn_constructor_kwargs=actor)
            rows = score_chunks(job, scored.iter_batches(batch_size=None, batch_format="pyarrow"), tally, set(), bar)
        if job.output is not None:
            _assemble_output(job, _label_names(model_dir), rows)
    except BaseException:
        if job.output is not None:
            shutil.rmtree(job.parts_dir, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    return {"input": job.input_name, "output": "stdout" if job.output is None else str(job.output), "rows": rows,
            "scored": rows - tally.empty, "empty": tally.empty, "parts_reused": 0, "seconds": seconds,
            "texts_per_s": (rows - tally.empty) / seconds, "engine": "ray", "workers": workers, "threads": threads,
            "actor_cpus": cpus}


def _ray_job(input: str | Path, output: str | Path, text_column: str, chunk_size: int, overwrite: bool,
             workers: int, threads: int | None) -> Job:
    """The checked job (as the local engine checks it) and the Ray options."""
    if str(input) == STDIO:
        raise SentituneError("--input -: Ray's workers cannot read this process's stdin; pass --input FILE, or "
                             "use --engine local.")
    if workers < 1:
        raise SentituneError(f"--workers {workers}: must be at least 1.")
    if threads is not None and threads < 1:
        raise SentituneError(f"--threads {threads}: must be at least 1 (or left out: the actor's CPU share).")
    return checked_job(input, output, text_column, chunk_size, resume=False, overwrite=overwrite)


def _ray():
    """The ray module with Ray Data, or a one-line error naming the extra to install."""
    require("ray", what="--engine ray")
    import ray
    import ray.data  # noqa: F401

    return ray


@contextlib.contextmanager
def _ray_session(ray, address: str | None) -> Iterator[None]:
    """The running Ray instance, a cluster at `address`, or a new local instance; disconnects or stops what it
    started."""
    if ray.is_initialized():
        yield
        return
    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:  # "local": never join a cluster that RAY_ADDRESS happens to name
            ray.init(address="local", num_cpus=_local_cpus(), include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if not address:
            raise SentituneError(f"--engine ray: a local Ray instance did not start ({first_line(exc)}).") from None
        raise SentituneError(f"--ray-address {address}: cannot join Ray ({first_line(exc)}); start a cluster "
                             "with `ray start --head`, or leave --ray-address out for a local instance.") from None
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """A one-line error for a host:port where nothing listens: `ray.init` would retry it for minutes."""
    match = re.fullmatch(r"([\w.-]+):(\d+)", address)
    if not match:  # auto, ray://..., local
        return
    try:
        socket.create_connection((match[1], int(match[2])), timeout=5).close()
    except OSError as exc:
        raise SentituneError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the "
                             "head node with `ray start --head`, or check the address.") from None


def _local_cpus() -> int:
    """Logical CPUs of a local instance: the machine's, at least 2 so that a read or write task always fits
    beside the actors (`_actor_resources`); torch threads, not this number, decide the real load."""
    return max(os.cpu_count() or 1, 2)


@contextlib.contextmanager
def _data_context(ray, block_bytes: int | None) -> Iterator[None]:
    """Ray Data settings for the job, restored after it: blocks in input order, of at most `block_bytes` bytes,
    and no progress bars of Ray's (the local engine's bar counts the rows written)."""
    context = ray.data.DataContext.get_current()
    saved = context.execution_options.preserve_order, context.enable_progress_bars, context.target_max_block_size
    context.execution_options.preserve_order, context.enable_progress_bars = True, False
    context.target_max_block_size = block_bytes or saved[2]
    try:
        yield
    finally:
        (context.execution_options.preserve_order, context.enable_progress_bars,
         context.target_max_block_size) = saved


def _actor_resources(ray, workers: int, threads: int | None) -> tuple[float, int]:
    """(CPUs each actor reserves, torch threads it runs). The actors leave one CPU of the cluster free for Ray
    Data's read and write tasks: actors holding every CPU wait forever for blocks that nobody reads (2 actors of
    1 CPU each on a 2-CPU machine hang). An actor also fits on the largest node; threads default to its share."""
    total = ray.cluster_resources().get("CPU", 0)
    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
    share = min((total - 1) / workers, largest)
    if share <= 0:
        raise SentituneError(f"--engine ray: the Ray cluster has {total:g} CPU(s); it needs at least 2 (one is "
                             "kept for reading and writing), add nodes or leave --ray-address out.")
    threads = threads or max(1, int(share))
    return min(float(threads), share), threads


class _ModelActor:
    """One model per Ray actor, loaded once; scores arrow batches exactly as the local engine scores chunks."""

    def __init__(self, model_dir: str, backend: str, threads: int, batch_size: int | None, windows: bool, job: Job):
        from ..core.machine import Runtime
        from .predict import SentimentModel

        model = SentimentModel.from_pretrained(model_dir, backend=backend, runtime=Runtime.resolve(threads=threads))
        self.scorer, self.job = Scorer(model, batch_size, windows), job

    def __call__(self, table: pa.Table) -> pa.Table:
        check_writable(table.schema, self.job)
        return self.scorer(table, self.job)


class _Tally:
    """Stands where the local engine's scorer stands, for tables the actors already scored: counts the rows
    left unscored (a missing or blank text)."""

    def __init__(self):
        self.empty = 0

    def __call__(self, table: pa.Table, job: Job) -> pa.Table:
        self.empty += table.column("label").null_count
        return table


def _assemble_output(job: Job, names: tuple[str, ...], rows: int) -> None:
    """The output file from the parts; for an input without rows (Ray then yields no block), the local engine's
    output: the text column and the result columns, empty."""
    if not rows:
        empty = pa.table({job.text_column: pa.array([], pa.string())})
        write_part(job, 0, with_results(empty, np.zeros((0, len(names)), np.float32), np.zeros(0, bool), names,
                                          result_columns(names)))
    assemble(job, names)


def _label_names(model_dir: Path) -> tuple[str, ...]:
    """The model's class names, in its order (from its config: the weights stay with the actors)."""
    from ..core.labels import LabelScheme
    from ..models.loading import load_config

    return tuple(LabelScheme.from_model_config(load_config(str(model_dir))).names)


# --- reading and writing ----------------------------------------------------------------------------------


def _blocks(job: Job, workers: int) -> tuple[int, int | None]:
    """(rows per actor call, bytes per block): at most --chunk-size rows a call and a share for every actor, in
    blocks of no more than those rows. Ray Data cuts blocks by size (128 MiB) and an actor scores a block whole:
    a file of long texts in one block would keep one actor busy and the others idle."""
    rows = row_estimate(job)
    if not rows:
        return job.chunk_size, None
    per_call = min(job.chunk_size, -(-rows // workers))
    return per_call, max(_memory_bytes(job) * per_call // rows, 1)


def _memory_bytes(job: Job) -> int:
    """The input's size in memory, about: parquet's uncompressed size, a text format's file size."""
    if job.input.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(job.input).metadata
        return sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    return job.input.stat().st_size


def _dataset(ray, job: Job):
    """The input as a Ray dataset, parsed as the local engine parses it."""
    path, suffix = str(job.input), job.input.suffix.lower()
    if suffix == ".parquet":
        return ray.data.read_parquet(path)
    if suffix in {".csv", ".tsv"}:
        return ray.data.read_csv(path, **_csv_options(job))
    if suffix == ".txt":  # read whole, as Ray's read_text reads, then split in lines as the local engine splits
        return ray.data.read_binary_files(path).map_batches(_text_table, batch_format="pyarrow", batch_size=None,
                                                            fn_kwargs={"job": job})
    return ray.data.read_json(path)  # .jsonl/.json: one object per line


def _csv_options(job: Job) -> dict:
    """Arrow CSV options giving the local engine's reading (pandas, dtype=str, no NA parsing): every column as
    text, empty cells as "", quoted newlines kept. The column names come from the header, read here."""
    import pyarrow.csv as pcsv

    parse = pcsv.ParseOptions(delimiter=_delimiter(job.input), newlines_in_values=True)
    try:
        with pcsv.open_csv(job.input, parse_options=parse) as reader:
            names = reader.schema.names
    except (pa.ArrowException, OSError) as exc:
        raise SentituneError(f"--input {job.input}: cannot parse as {job.input.suffix[1:].upper()} "
                             f"({first_line(exc)}).") from None
    convert = pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False)
    return {"parse_options": parse, "convert_options": convert}


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _text_table(files: pa.Table, job: Job) -> pa.Table:
    """The lines of text files as the local engine splits them: newlines only, blank lines skipped."""
    lines = [line for raw in files.column("bytes").to_pylist() for _, line in numbered_lines(io.BytesIO(raw), job)]
    return pa.table({job.text_column: pa.array(lines, pa.string())})


# --- errors -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _user_errors(job: Job) -> Iterator[None]:
    """One-line errors for what a read task or an actor raised about the input: a SentituneError as it was
    raised there, an Arrow parse error naming the input. Anything else is raised as Ray raised it. Ray passes
    a task's exception on as text (its traceback), the exception itself stays on the worker."""
    try:
        yield
    except Exception as exc:
        text = "\n".join(f"{c}\n{getattr(c, 'traceback_str', '')}" for c in _causes(exc))
        ours = _REMOTE_SENTITUNE.findall(text)
        if ours:
            raise SentituneError(ours[-1]) from None
        arrow = _REMOTE_ARROW.findall(text) + [str(c) for c in _causes(exc) if isinstance(c, pa.ArrowException)]
        if arrow or "ray::Read" in text:  # a read task failed: the file does not parse
            reason = (arrow or _REMOTE_ERROR.findall(text) or [type(exc).__name__])[-1].split(". ")[0][:160]
            raise SentituneError(f"--input {job.input}: cannot read as {job.input.suffix[1:].upper()} ({reason}); "
                                 "--engine local names the line at fault.") from None
        raise


_REMOTE_SENTITUNE = re.compile(  # the class's own module path, so it follows a move
    rf"^{re.escape(SentituneError.__module__)}\.SentituneError: (.+)$", re.MULTILINE)
_REMOTE_ARROW = re.compile(r"^pyarrow\.lib\.Arrow\w*: (.+)$", re.MULTILINE)
_REMOTE_ERROR = re.compile(r"^[\w.]+(?:Error|Exception): (.+)$", re.MULTILINE)


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what caused it, outermost first (a Ray task error's `cause`: the task's exception type)."""
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return chain
