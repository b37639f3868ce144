"""Micro-batching for `sentitune serve`: concurrent /predict requests scored together in one model call.

One worker thread takes the oldest waiting request, then whatever else arrives within `max_wait_ms`, up to
`max_batch_texts` texts, scores all their texts in one `score` call and hands each request its own rows. A
request is never split (one over `max_batch_texts` texts is scored alone), a request whose client has stopped
waiting is dropped unscored, and if a batch fails each of its requests is retried alone, so one bad request
cannot fail the others. How many requests may wait is the caller's to bound (serve.py's slots).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

MAX_BATCH_TEXTS = 64
MAX_WAIT_MS = 5.0


class Closed(RuntimeError):
    """The batcher is closed (the app is shutting down): the request is not scored."""


@dataclass
class Job:
    texts: list[str]
    deadline: float
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Scores lists of texts with `score(texts) -> (n, K) array`, batching the lists submitted meanwhile."""

    def __init__(self, score: Callable[[list[str]], np.ndarray], max_batch_texts: int = MAX_BATCH_TEXTS,
                 max_wait_ms: float = MAX_WAIT_MS, timeout: float = float("inf")):
        if max_batch_texts < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_texts must be at least 1 and max_wait_ms at least 0")
        self.score, self.max_batch_texts = score, max_batch_texts
        self.max_wait, self.timeout = max_wait_ms / 1000, timeout
        self.batches = 0  # model calls made, for tests and load benchmarks
        self._jobs: deque[Job] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._worker: threading.Thread | None = None

    def submit(self, texts: list[str]) -> Future:
        """A future of the (len(texts), K) probabilities; it fails with TimeoutError after `timeout` s unscored."""
        job = Job(list(texts), time.monotonic() + self.timeout)
        with self._changed:
            if self._closed:
                raise Closed("the batcher is closed")
            if self._worker is None:  # started on first use: an app that never scores holds no thread
                self._worker = threading.Thread(target=self._run, name="sentitune-microbatch", daemon=True)
                self._worker.start()
            self._jobs.append(job)
            self._changed.notify()
        return job.future

    def open(self) -> None:
        """Accept requests again after `close` (an app whose lifespan starts again); the worker starts on first use."""
        with self._changed:
            if self._closed and (self._worker is None or not self._worker.is_alive()):
                self._closed, self._worker = False, None

    def close(self) -> None:
        """Stop the worker after the requests already waiting."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        if self._worker is not None:
            self._worker.join()

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = [job for job in batch if _still_wanted(job)]
            if live:
                self._score(live)

    def _next_batch(self) -> list[Job] | None:
        """The oldest job and those that join it within `max_wait` and `max_batch_texts`; None once closed."""
        with self._changed:
            while not self._jobs and not self._closed:
                self._changed.wait()
            if not self._jobs:
                return None
            batch = [self._jobs.popleft()]
            size, until = len(batch[0].texts), time.monotonic() + self.max_wait
            while size < self.max_batch_texts:
                if self._jobs:
                    if size + len(self._jobs[0].texts) > self.max_batch_texts:
                        break
                    batch.append(self._jobs.popleft())
                    size += len(batch[-1].texts)
                elif self._closed or not self._changed.wait(max(until - time.monotonic(), 0)):
                    break
            return batch

    def _score(self, batch: list[Job]) -> None:
        try:
            probs = self.score([text for job in batch for text in job.texts])
            self.batches += 1
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            for job in batch:
                self._score([job])
            return
        bounds = np.cumsum([len(job.texts) for job in batch])[:-1]
        for job, rows in zip(batch, np.split(np.asarray(probs), bounds)):
            job.future.set_result(rows)


def _still_wanted(job: Job) -> bool:
    """Mark the job running unless its client gave up (cancelled) or its deadline passed (then fail it)."""
    if not job.future.set_running_or_notify_cancel():
        return False
    if time.monotonic() > job.deadline:
        job.future.set_exception(TimeoutError("not scored before the request's deadline"))
        return False
    return True
