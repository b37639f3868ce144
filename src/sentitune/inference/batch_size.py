"""Batch sizes measured, not guessed: each candidate timed on this machine's device, its memory watched, an
out-of-memory error turned into "does not fit" (CUDA's cache freed after it). Prediction uses the fastest eval
batch (`fastest_eval_batch`); training's sweep (`training.autobatch`) builds on the same pieces.
"""

from __future__ import annotations

import gc
import time

import torch

MEMORY_SHARE = 0.8  # default limit: this share of the machine's memory (CPU) or of the GPU's
EVAL_SIZES = (8, 16, 32, 64, 128, 256)
EVAL_TEXTS = 256  # texts timed per candidate size, at the least


def memory_limit_mb(limit_gb: float | None, device: torch.device) -> float:
    """The memory a batch-size candidate may use: `limit_gb`, else MEMORY_SHARE of the device's."""
    if limit_gb:
        return limit_gb * 1024
    if device.type == "cuda":
        return MEMORY_SHARE * torch.cuda.get_device_properties(device).total_memory / 2**20
    import psutil

    return MEMORY_SHARE * psutil.virtual_memory().total / 2**20


def memory_mb(device: torch.device) -> float:
    """Memory in use now: the process's resident memory (CPU), or the peak CUDA allocation since the last reset."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def freed(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def measured(row: dict, rate, device: torch.device, limit: float) -> dict:
    """`row` with `rate()`'s examples/s and the memory then in use, or marked as not fitting: out of memory, or
    over `limit` MB."""
    try:
        row["examples_per_s"], row["memory_mb"] = round(rate(), 2), round(memory_mb(device))
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not out_of_memory(exc):
            raise
        row.update(fits=False, reason="out of memory")
    freed(device)
    if row["fits"] and row["memory_mb"] > limit:
        row.update(fits=False, reason=f"{row['memory_mb']:,} MB over the {limit:,.0f} MB limit")
    return row


def fastest_eval_batch(model, texts: list, pad: int, runtime, limit: float) -> tuple[list[dict], float]:
    """A row per eval batch size (EVAL_SIZES, up to what the texts fill): examples/s predicting two batches of the
    tokenized `texts` after a warm-up batch; stops at the first size that does not fit. Also when it started."""
    from .predict import logits_for_ids

    device, started, rows = runtime.device, time.perf_counter(), []
    for size in EVAL_SIZES:
        # at least EVAL_TEXTS of the run's own texts (two batches of the larger sizes): two batches of 16 alone read
        # +-10% from one sweep to the next (AMX Xeon), enough to pick 16 over 32 and back
        count = max(2 * size, EVAL_TEXTS)
        ids = (texts * (count // max(len(texts), 1) + 1))[:count]
        row = {"batch_size": size, "examples_per_s": None, "fits": True, "reason": None, "memory_mb": None}
        rows.append(row)

        def batches() -> float:
            logits_for_ids(model, ids[:size], pad, size, runtime)  # warm-up: kernels for this shape
            begun = time.perf_counter()
            logits_for_ids(model, ids, pad, size, runtime)
            return len(ids) / (time.perf_counter() - begun)

        # a batch larger than the data holds measures nothing new
        if not measured(row, batches, device, limit)["fits"] or len(texts) < size:
            break
    return rows, started


def best_size(rows: list[dict]) -> int | None:
    """The batch size of the fastest row that fitted (None: none fitted)."""
    fitting = [r for r in rows if r["fits"]]
    return max(fitting, key=lambda r: r["examples_per_s"])["batch_size"] if fitting else None


def fastest_batch_size(model, texts: list[str], limit_gb: float | None = None) -> tuple[int, list[dict]]:
    """The batch size at which `model` (a `SentimentModel`, any backend) predicts `texts` (a sample of what is to
    come) fastest on this machine, and the rows of the sweep (`--batch-size auto`); one line when none fits."""
    from ..core.errors import SentituneError
    from ..data import clean_text, tokenize_function

    texts = [clean_text(t) for t in texts] if model.clean else list(texts)
    ids = tokenize_function(model.tokenizer, model.max_length, model.truncation)({"text": texts})["input_ids"]
    rows, _ = fastest_eval_batch(model.model_at(), ids, model.tokenizer.pad_token_id or 0, model.runtime,
                                 memory_limit_mb(limit_gb, model.runtime.device))
    if best_size(rows) is None:
        raise SentituneError(f"--batch-size auto: no batch size fits on this {model.runtime.device.type.upper()} "
                             f"(even {rows[0]['batch_size']}: {rows[0]['reason']}); pass a smaller --batch-size.")
    return best_size(rows), rows
