"""Preemption: SIGTERM (what spot instances, Slurm and Kubernetes send before SIGKILL) during train, distill, adapt and
`predict --input` stops the work with a checkpoint (or the chunks scored) and exit code 143 after one line on stderr,
within a bounded time; `--resume` then ends exactly where an uninterrupted run ends.

The signal is sent at a known point: by tests/killer.py in a subprocess (KILLER_SIGNAL=TERM), or in-process by a
callback while sentitune's handler is installed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from case_counts import record
from conftest import synthetic_reviews
from safetensors.torch import load_file
from test_adapt import adapted, imdb_like, tiny_adapt  # noqa: F401  (fixtures)
from test_batch import write_input
from test_cli import sentitune
from test_distill import data, student, student_settings, teacher, transfer  # noqa: F401  (fixtures)
from test_train import kill_at, straight_run, tiny_run  # noqa: F401  (fixtures)
from transformers import TrainerCallback

from sentitune.core.preemption import EXIT_CODE, Preempted, Preemption
from sentitune.inference.batch import score_file
from sentitune.run.folder import RunFolder
from sentitune.training.adapt import adapt
from sentitune.training.distill import distill

BOUND_S = 60  # from the signal to the process's end, on a loaded 2-core CPU (a tiny model's step takes milliseconds)


def terminated(point: str, *args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    """`sentitune ARGS` in a subprocess that sends itself SIGTERM at `point`; the result and the seconds from the
    signal to the process's end."""
    stamp = tmp_path / "signalled-at"
    result = kill_at(point, *args, env={"KILLER_SIGNAL": "TERM", "KILLER_STAMP": str(stamp),
                                         "SENTITUNE_CACHE": str(tmp_path / "cache")})
    ended = time.time()
    record("fault", f"SIGTERM at {point} ({args[0]})")
    return result, ended - float(stamp.read_text())


def the_stop_line(stderr: str) -> str:
    """The one line sentitune wrote on stderr (other libraries' warnings aside)."""
    ours = [line for line in stderr.splitlines() if line.startswith(("stopped:", "error:", "Traceback"))]
    assert len(ours) == 1 and ours[0].startswith("stopped:"), stderr[-3000:]
    assert "Traceback" not in stderr and ("run the same command with --resume" in ours[0] or "stdout" in ours[0])
    return ours[0]


@pytest.mark.parametrize("point, checkpoint", [
    ("step:2", "checkpoint-3"),   # before the first checkpoint (4): the preemption writes the first one
    ("step:9", "checkpoint-10"),  # in epoch 2, off the checkpoint cadence: the length-grouped order goes on
])
def test_sigterm_while_training_checkpoints_exits_143_and_resumes_exactly(straight_run, tmp_path, monkeypatch,  # noqa: F811
                                                                          point, checkpoint):
    straight, args = straight_run
    monkeypatch.setenv("SENTITUNE_CACHE", str(tmp_path / "cache"))
    args = (*args[:-1], str(tmp_path))
    result, seconds = terminated(point, *args, "--name", "run", tmp_path=tmp_path)
    assert result.returncode == EXIT_CODE == 143, result.stderr[-3000:]
    line = the_stop_line(result.stderr)
    assert f"{checkpoint} saved in {tmp_path / '.run.partial'}" in line and seconds < BOUND_S
    work = tmp_path / ".run.partial"
    assert (work / "checkpoints" / checkpoint / "trainer_state.json").is_file() and not (tmp_path / "run").exists()
    assert not (tmp_path / ".run.lock").exists()  # the lock was let go on the way out
    resumed = sentitune(*args, "--name", "run", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected, got = (json.loads((folder / "metrics.json").read_text()) for folder in (straight, tmp_path / "run"))
    assert got["train"]["resumed_from"] == checkpoint and got["train"]["steps"] == expected["train"]["steps"] == 12
    assert got["train"]["train_loss"] == pytest.approx(expected["train"]["train_loss"], rel=1e-6)
    for split in ("validation", "test"):
        assert got[split] == expected[split]  # bit-exact on the tiny model
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "run" / "predictions.parquet"),
                                  pd.read_parquet(straight / "predictions.parquet"))


def test_sigterm_before_training_stops_at_once_and_a_resume_starts_the_run(straight_run, tmp_path,  # noqa: F811
                                                                           monkeypatch):
    straight, args = straight_run
    monkeypatch.setenv("SENTITUNE_CACHE", str(tmp_path / "cache"))
    args = (*args[:-1], str(tmp_path))
    result, seconds = terminated("prepare", *args, "--name", "run", tmp_path=tmp_path)
    assert result.returncode == 143 and seconds < BOUND_S, result.stderr[-3000:]
    assert "nothing half-written was kept" in the_stop_line(result.stderr)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith((".run", "run"))]
    assert sentitune(*args, "--name", "run", "--resume").returncode == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"] == \
        json.loads((straight / "metrics.json").read_text())["test"]


class SigtermAt(TrainerCallback):
    """Sends this process SIGTERM at the end of step `step` (only while sentitune's handler is installed)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            assert Preemption.active() is not None  # never SIGTERM the test process itself
            record("fault", f"SIGTERM at step {self.step} (in-process)")
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_while_distilling_checkpoints_and_resumes_exactly(teacher, transfer, student, capsys):  # noqa: F811
    with pytest.raises(Preempted) as stopped:
        distill(teacher, student_settings(transfer), {"name": "preempted"}, callbacks=[SigtermAt(3)])
    assert stopped.value.code == 143 and "checkpoint-3 saved" in the_stop_line(capsys.readouterr().err)
    resumed = distill(teacher, student_settings(transfer), {"name": "preempted"}, resume=True)
    got, expected = RunFolder(resumed).metrics(), RunFolder(student).metrics()
    assert got["train"]["resumed_from"] == "checkpoint-3" and got["train"]["steps"] == expected["train"]["steps"]
    for split in ("validation", "test"):
        assert got[split] == expected[split]


def test_sigterm_while_adapting_checkpoints_and_resumes_to_the_same_weights(adapted, tmp_path, capsys):  # noqa: F811
    folder, cfg = adapted
    again = tiny_adapt(cfg.model, cfg.data.data, tmp_path, name="preempted")
    with pytest.raises(Preempted):
        adapt(again, callbacks=[SigtermAt(3)])
    assert "adapt --name preempted" in the_stop_line(capsys.readouterr().err)
    assert (tmp_path / ".preempted.partial" / "checkpoints" / "checkpoint-3" / "trainer_state.json").is_file()
    resumed = adapt(again, resume=True)
    assert json.loads((resumed / "adapt.json").read_text())["resumed_from"] == "checkpoint-3"
    weights, expected = (load_file(str(next(Path(f).glob("*.safetensors")))) for f in (resumed, folder))
    assert weights.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=0, msg=name)


@pytest.fixture(scope="module")
def scoring(tiny_model, tmp_path_factory):
    """45 reviews to score in chunks of 10, and the output of an uninterrupted job."""
    folder = tmp_path_factory.mktemp("scoring")
    source = write_input(synthetic_reviews(23, seed=5).head(45)[["text", "movie"]], folder / "in.parquet")
    score_file(tiny_model, source, folder / "straight.parquet", chunk_size=10, progress=False)
    return source, pd.read_parquet(folder / "straight.parquet")


def test_sigterm_while_scoring_a_file_keeps_the_parts_and_resumes_to_the_same_output(tiny_model, scoring, tmp_path):
    source, straight = scoring
    out = tmp_path / "out.parquet"
    result, seconds = terminated("chunk:2", "predict", str(tiny_model), "--input", str(source), "--output", str(out),
                                 "--chunk-size", "10", tmp_path=tmp_path)
    assert result.returncode == 143 and seconds < BOUND_S, result.stderr[-3000:]
    assert "2 chunk(s) of 10 rows saved" in the_stop_line(result.stderr)
    parts = tmp_path / ".out.parquet.parts"
    assert not out.exists() and sorted(p.name for p in parts.glob("part-*")) == ["part-00000.parquet",
                                                                               "part-00001.parquet"]
    assert not list(parts.glob(".*tmp*")) and not (tmp_path / ".out.parquet.lock").exists()
    summary = score_file(tiny_model, source, out, chunk_size=10, resume=True, progress=False)
    assert summary["parts_reused"] == 2
    pd.testing.assert_frame_equal(pd.read_parquet(out), straight)


def test_sigterm_while_scoring_to_stdout_leaves_whole_lines(tiny_model, scoring, tmp_path):
    source, straight = scoring
    result, _ = terminated("chunk:2", "predict", str(tiny_model), "--input", str(source), "--output", "-",
                           "--chunk-size", "10", tmp_path=tmp_path)
    assert result.returncode == 143
    assert "20 rows were written to stdout as whole lines" in the_stop_line(result.stderr)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == straight["text"][:20].tolist()


def test_outside_a_loop_sigterm_stops_at_once_and_the_old_handler_comes_back(capsys):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Preempted) as stopped:
        with Preemption("--name x"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # never reached: the handler raises at once
    assert stopped.value.code == 143 and signal.getsignal(signal.SIGTERM) is before
    assert capsys.readouterr().err == ("stopped: --name x: SIGTERM received; nothing half-written was kept; run the "
                                       "same command with --resume to continue.\n")
    with Preemption("--name y") as stop, stop.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested  # deferred: the loop stops at its next safe point
    assert signal.getsignal(signal.SIGTERM) is before


DANGLING_SIGNAL_STACK = """
import ctypes, os, signal
from sentitune.core.preemption import Preemption, _StackT

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype, libc.mmap.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                                          ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
size = 1 << 16
address = libc.mmap(None, size, 3, 0x22, -1, 0)  # PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
assert libc.sigaltstack(ctypes.byref(_StackT(address, 0, size)), None) == 0
libc.munmap(address, size)  # the thread's alternate stack now points at freed memory
with Preemption("--name x"):
    os.kill(os.getpid(), signal.SIGTERM)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the alternate signal stack is set through Linux's stack_t")
def test_sigterm_is_handled_after_a_library_freed_the_alternate_signal_stack():
    """OpenVINO's CPU plugin left the main thread's alternate signal stack pointing at freed memory (after the export
    tests): SIGTERM then ended the process with SIGSEGV (exit 139) instead of reaching the handler."""
    result = subprocess.run([sys.executable, "-c", DANGLING_SIGNAL_STACK], capture_output=True, text=True, timeout=60)
    record("fault", "SIGTERM with a freed alternate signal stack")
    assert result.returncode == 143, (result.returncode, result.stderr[-2000:])
    assert result.stderr.startswith("stopped: --name x: SIGTERM received;")
