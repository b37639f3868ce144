"""Stopping cleanly on SIGTERM: what spot instances, Slurm and Kubernetes send some seconds before SIGKILL.

`with Preemption("--name run") as stop:` installs a SIGTERM handler (in the main thread; elsewhere it does nothing)
for the work inside. Where the work can stop at any point (reading, tokenizing, an atomic write), the signal stops
it at once: the handler raises `Preempted`, so `finally` blocks and atomic writes clean up as for any error. Inside
`stop.deferred()` (a training loop, a loop over chunks) the signal only sets `stop.requested`; the loop checks it at
its next safe point, saves where it is and raises `stop.stopped(...)`. Either way the process exits with code 143
(128 + SIGTERM, what a shell reports for a process SIGTERM ended) after one line on stderr that says what was saved
and how to continue (`--resume`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import signal
import sys
import threading
from typing import Callable

from .errors import LINE_BREAKS

EXIT_CODE = 128 + signal.SIGTERM  # 143
RESUME = "run the same command with --resume to continue"
SIGNAL_STACK_BYTES = 1 << 18


class _StackT(ctypes.Structure):  # Linux's stack_t
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@functools.lru_cache(maxsize=1)
def _signal_stack() -> ctypes.Array:
    return ctypes.create_string_buffer(SIGNAL_STACK_BYTES)  # lives as long as the process


def sound_signal_stack() -> None:
    """Give the calling thread an alternate signal stack that lives as long as the process (Linux). Python installs
    its handlers with SA_ONSTACK, and OpenVINO's CPU plugin can leave the thread's alternate stack pointing at memory
    it has freed (seen after compiled models were released out of order): the kernel then cannot deliver SIGTERM and
    ends the process with SIGSEGV instead of running the handler."""
    if sys.platform != "linux":
        return
    stack = _signal_stack()
    new = _StackT(ctypes.cast(stack, ctypes.c_void_p), 0, SIGNAL_STACK_BYTES)
    ctypes.CDLL(None, use_errno=True).sigaltstack(ctypes.byref(new), None)


class Preempted(SystemExit):
    """The work stopped on SIGTERM where it can be resumed: the process exits with EXIT_CODE."""

    def __init__(self, message: str):
        super().__init__(EXIT_CODE)
        self.message = message


class Preemption:
    """SIGTERM while active: an immediate `Preempted`, or inside `deferred()` a request the loop acts on."""

    _stack: list["Preemption"] = []  # the active ones, innermost last

    def __init__(self, what: str, hint: str = RESUME):
        self.what, self.hint, self.requested, self.deferring = what, hint, False, 0
        self.progress: Callable[[], str] | None = None  # what is saved so far, for a stop outside `deferred()`
        self.installed, self.previous = False, None

    @classmethod
    def active(cls) -> "Preemption | None":
        """The innermost active Preemption (the one SIGTERM reaches), or None."""
        return cls._stack[-1] if cls._stack else None

    def __enter__(self) -> "Preemption":
        if threading.current_thread() is threading.main_thread():
            sound_signal_stack()
            self.previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self.installed = True
            Preemption._stack.append(self)
        return self

    def __exit__(self, *exc) -> None:
        if self.installed:
            Preemption._stack.remove(self)
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.previous is None else self.previous)
            self.installed = False

    def _on_sigterm(self, signum, frame) -> None:
        self.requested = True
        if not self.deferring:
            raise self.stopped(self.progress() if self.progress else "nothing half-written was kept")

    @contextlib.contextmanager
    def deferred(self):
        """Inside, SIGTERM only sets `requested`: the caller stops at its next safe point."""
        self.deferring += 1
        try:
            yield self
        finally:
            self.deferring -= 1

    def stopped(self, saved: str) -> Preempted:
        """The exception that ends the work, after its one line on stderr; `saved`: what a resume starts from."""
        line = f"stopped: {self.what}: SIGTERM received; {saved}; {self.hint}."
        print(line.translate(LINE_BREAKS), file=sys.stderr, flush=True)
        return Preempted(line)


def preemptible(what: Callable[..., str], hint: Callable[..., str] = lambda *args, **kwargs: RESUME):
    """Decorate a function to run inside a `Preemption` described by `what(*args, **kwargs)`, whose line ends with
    `hint(*args, **kwargs)` (how to continue)."""
    def decorate(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            with Preemption(what(*args, **kwargs), hint(*args, **kwargs)):
                return function(*args, **kwargs)
        return run
    return decorate
