"""A full disk (ENOSPC) during a run, an export or batch scoring: one line naming what and where (SentituneError, exit
code 2), what was there before left as it was (an older run, an earlier export, an earlier output), nothing
half-written kept, and the work resumable once space is freed.

The fault is injected (OSError(ENOSPC) raised by the write at a known point) in every environment; where this process
may mount a size-limited tmpfs (root), the same stages also run out of real space on one."""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from case_counts import record
from conftest import synthetic_reviews
from test_batch import write_input
from test_cli import sentitune
from test_train import tiny_config, tiny_run  # noqa: F401  (fixture)
from transformers import Trainer

import sentitune.inference.batch as batch
from sentitune.core.errors import SentituneError
from sentitune.core.io import disk_full
from sentitune.inference.batch import score_file
from sentitune.run.folder import RunFolder
from sentitune.training.train import train


def no_space(path="file") -> OSError:
    record("fault", "ENOSPC injected")
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(result) -> str:
    """The one error line of a command that exited 2 (a progress bar may share stderr)."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("scoring ")]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[0].startswith("error: ")
    return lines[0]


def test_the_kinds_of_full_disk_errors_are_recognised(tmp_path):
    assert disk_full(OSError(errno.ENOSPC, "x")) and disk_full(OSError(errno.EDQUOT, "x"))
    assert disk_full(RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"))
    try:
        try:
            raise OSError(errno.ENOSPC, "inner")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert disk_full(outer)
    short = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert not disk_full(short, tmp_path) and not disk_full(OSError(errno.EACCES, "denied"), tmp_path)


# ---------------------------------------------------------------- a run


@pytest.fixture
def older_run(tiny_run, tmp_path):  # noqa: F811
    """A finished run named `run` in tmp_path (the one a new run with --overwrite replaces) and its files."""
    run_dir, cfg, data = tiny_run
    shutil.copytree(run_dir, tmp_path / "run")
    return snapshot(tmp_path / "run"), cfg, data


def test_a_full_disk_at_a_checkpoint_keeps_the_older_run_and_resumes_exactly(older_run, tiny_run, tmp_path,  # noqa: F811
                                                                           monkeypatch):
    before, cfg, data = older_run
    save_rng = Trainer._save_rng_state

    def full_at_step_8(self, output_dir):
        if self.state.global_step == 8:
            raise no_space(Path(output_dir) / "rng_state.pth")
        save_rng(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", full_at_step_8)
    again = tiny_config(cfg.model, data, tmp_path, name="run")
    with pytest.raises(SentituneError, match=rf"--name run: no space left on the device that holds {tmp_path} "
                                             r"\(.* MB free\); free some space, then run the same command with "
                                             "--resume to continue"):
        train(again, overwrite=True)
    assert snapshot(tmp_path / "run") == before  # the older run as it was
    assert not (tmp_path / ".run.lock").exists()
    monkeypatch.setattr(Trainer, "_save_rng_state", save_rng)  # space freed
    resumed = train(again, resume=True, overwrite=True)
    got, expected = RunFolder(resumed).metrics(), RunFolder(tiny_run[0]).metrics()
    assert got["train"]["resumed_from"] == "checkpoint-4" and got["train"]["steps"] == 8
    for split in ("validation", "test"):
        assert got[split] == expected[split]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]


def test_a_full_disk_during_the_final_save_keeps_the_older_run_and_the_cli_says_one_line(older_run, tmp_path,
                                                                                       monkeypatch):
    before, cfg, data = older_run
    monkeypatch.setattr(RunFolder, "write_predictions", lambda self, frame, at=None: (_ for _ in ()).throw(
        no_space(self.predictions_path)))
    args = ("train", "--model", cfg.model, "--data", str(data), "--validation-size", "0.2", "--max-steps", "8",
            "--batch-size", "8", "--learning-rate", "1e-3", "--eval-steps", "4", "--max-length", "64",
            "--output-dir", str(tmp_path), "--name", "run", "--overwrite")
    line = one_line(sentitune(*args))
    assert line.startswith("error: --name run: no space left on the device that holds") and "--resume" in line
    assert snapshot(tmp_path / "run") == before
    work = RunFolder(tmp_path / ".run.partial")
    assert work.trained() and not list(work.path.glob(".*.tmp-*"))  # training had ended; no half-written file
    monkeypatch.undo()
    assert sentitune(*args, "--resume").returncode == 0
    assert RunFolder(tmp_path / "run").metrics()["train"]["resumed_from"] is None  # the save redone, not training


# ---------------------------------------------------------------- an export


def test_a_full_disk_during_an_export_keeps_the_earlier_export(tiny_model, tmp_path, monkeypatch):
    from sentitune.inference import export

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    export.export_onnx(folder, quantize=False)
    before = snapshot(folder)

    def full_disk(src, out, config):
        Path(out).write_bytes(b"half a graph")
        raise no_space(out)

    monkeypatch.setattr(export, "_fused", full_disk)
    with pytest.raises(SentituneError, match=rf"export {folder}: no space left on the device that holds {folder}"):
        export.export_onnx(folder, quantize=False)
    assert snapshot(folder) == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------- batch scoring


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("disk-full-input")
    return write_input(synthetic_reviews(23, seed=6).head(45)[["text", "movie"]], folder / "in.parquet")


@pytest.mark.parametrize("where", ["part", "assemble"])
def test_a_full_disk_while_scoring_keeps_the_earlier_output_and_resumes(tiny_model, source, tmp_path, monkeypatch,
                                                                        where):
    out = tmp_path / "out.parquet"
    score_file(tiny_model, source, tmp_path / "straight.parquet", chunk_size=10, progress=False)
    out.write_bytes(b"an earlier output")
    if where == "part":
        plain = batch.write_part
        monkeypatch.setattr(batch, "write_part", lambda job, index, table: (_ for _ in ()).throw(
            no_space(job.parts_dir)) if index == 2 else plain(job, index, table))
    else:
        def half_then_full(parts, schema, path):
            Path(path).write_bytes(b"PAR1 half")
            raise no_space(path)

        monkeypatch.setattr(batch, "_write_parquet", half_then_full)
    with pytest.raises(SentituneError, match=rf"--output {out}: no space left on the device that holds {tmp_path}"):
        score_file(tiny_model, source, out, chunk_size=10, overwrite=True, progress=False)
    assert out.read_bytes() == b"an earlier output"
    parts = tmp_path / ".out.parquet.parts"
    assert len(list(parts.glob("part-*"))) == (2 if where == "part" else 5) and not list(parts.glob(".*tmp*"))
    assert not (tmp_path / ".out.parquet.lock").exists()
    monkeypatch.undo()
    score_file(tiny_model, source, out, chunk_size=10, resume=True, overwrite=True, progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "straight.parquet"))


# ---------------------------------------------------------------- real full disks (a tmpfs; needs root)


@pytest.fixture
def small_disk(tmp_path):
    """A mount point of a size-limited tmpfs (`small_disk(size)`), unmounted after the test; skips where this
    process may not mount one (the injected faults above cover those environments)."""
    mounts = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounts)}"
        point.mkdir()
        if sys.platform != "linux" or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                                      str(point)], capture_output=True).returncode != 0:
            pytest.skip("mounting a tmpfs needs root; the injected faults cover this environment")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], check=False)


def test_scoring_onto_a_really_full_disk_is_one_line_and_keeps_the_earlier_output(tiny_model, small_disk, tmp_path):
    disk = small_disk("256k")
    big = write_input(pd.DataFrame({"text": [f"review {i} " + "words " * 40 for i in range(3000)]}),
                      tmp_path / "big.parquet")
    (disk / "out.csv").write_text("an earlier output\n")
    result = sentitune("predict", str(tiny_model), "--input", str(big), "--output", str(disk / "out.csv"),
                       "--chunk-size", "500", "--overwrite")
    record("fault", "real ENOSPC (tmpfs)")
    assert "--output" in one_line(result) and "no space left on the device" in result.stderr
    assert (disk / "out.csv").read_text() == "an earlier output\n"
    assert not [p.name for p in (disk / ".out.csv.parts").iterdir() if p.name.startswith(".")]


def test_training_onto_a_really_full_disk_is_one_line_and_resumable(tiny_run, small_disk, tmp_path,  # noqa: F811
                                                                    monkeypatch):
    run_dir, cfg, data = tiny_run
    disk = small_disk("6m")  # the tiny model's first checkpoint (weights, optimizer) needs about 13 MB
    monkeypatch.setenv("SENTITUNE_CACHE", str(tmp_path / "cache"))
    args = ("train", "--model", cfg.model, "--data", str(data), "--validation-size", "0.2", "--max-steps", "8",
            "--batch-size", "8", "--learning-rate", "1e-3", "--eval-steps", "4", "--max-length", "64",
            "--output-dir", str(disk), "--name", "run")
    result = sentitune(*args)
    record("fault", "real ENOSPC (tmpfs)")
    assert "--name run: no space left on the device" in one_line(result)
    assert not (disk / "run").exists() and not (disk / ".run.lock").exists()
    work = disk / ".run.partial"
    shutil.copytree(work, tmp_path / ".run.partial")  # space freed: the same work folder on a roomy disk
    resumed = sentitune(*args[:-4], "--output-dir", str(tmp_path), "--name", "run", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"] == RunFolder(run_dir).metrics()["test"]


def test_with_no_complete_checkpoint_a_resume_starts_over(tmp_path):
    """A full disk during the first checkpoint left checkpoint-4 without its trainer state, and a torn state is no
    state: HF's get_last_checkpoint handed the resume that checkpoint, which it could not load."""
    from sentitune.training.trainer import last_complete_checkpoint

    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "trainer_state.json").write_text('{"global_step": 8, "log_hi')  # cut short
    assert last_complete_checkpoint(tmp_path) is None
