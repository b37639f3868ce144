"""Tokenisation: head, tail or head+tail truncation (Sun et al. 2019), no padding, cached on disk by content."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from ..core.errors import SentituneError
from ..core.io import atomic_file

TRUNCATIONS = ("head", "tail", "head+tail")


def truncate_ids(ids: list[int], keep: int, strategy: str) -> list[int]:
    """Keep `keep` token ids: the first ones, the last ones, or a quarter head and the rest tail (Sun et al. 2019)."""
    if len(ids) <= keep:
        return ids
    if strategy == "head":
        return ids[:keep]
    if strategy == "tail":
        return ids[-keep:]
    head = keep // 4
    return ids[:head] + ids[len(ids) - (keep - head):]


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a single text ([CLS] ... [SEP] for BERT)."""
    with_special = tokenizer("sentiment")["input_ids"]
    plain = tokenizer("sentiment", add_special_tokens=False)["input_ids"]
    start = next(i for i in range(len(with_special)) if with_special[i:i + len(plain)] == plain)
    return with_special[:start], with_special[start + len(plain):]


def tokenize_function(tokenizer, max_length: int, truncation: str):
    """A batched `datasets.map` function: input_ids/attention_mask (no padding) plus n_tokens and truncated."""
    if truncation not in TRUNCATIONS:
        raise SentituneError(f"truncation='{truncation}': use one of {', '.join(TRUNCATIONS)}.")
    prefix, suffix = special_tokens_around(tokenizer)
    keep = max_length - len(prefix) - len(suffix)

    def tokenize(batch):
        encoded = tokenizer(batch["text"], add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        ids = [prefix + truncate_ids(e, keep, truncation) + suffix for e in encoded]
        return {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids],
                "n_tokens": [len(e) + len(prefix) + len(suffix) for e in encoded],
                "truncated": [len(e) > keep for e in encoded]}

    return tokenize


def tokenize_splits(splits, tokenizer, max_length: int, truncation: str = "head+tail",
                    cache_dir: str | None = None, use_cache: bool = True):
    """Tokenize every split through `datasets.map`, cached on disk by content, tokenizer and settings.

    `use_cache=False` keeps the result in memory (DDP ranks other than 0, so that two processes never
    write the same cache file)."""
    cache = Path(cache_dir or os.environ.get("SENTITUNE_CACHE", Path.home() / ".cache" / "sentitune")) / "tokenized"
    cache.mkdir(parents=True, exist_ok=True)
    remove_dead_writers(cache)
    fn = tokenize_function(tokenizer, max_length, truncation)
    vocab = tokenizer_digest(tokenizer)
    out = {}
    for split, ds in splits.items():
        key = hashlib.sha256(f"{ds._fingerprint}|{vocab}|{max_length}|{truncation}".encode()).hexdigest()[:20]
        target = cache / f"{key}.arrow"
        if use_cache and not target.exists():
            # datasets writes a temporary file beside its target: in a folder of this process, not in the cache
            with writer_folder(cache) as folder, atomic_file(target, folder) as tmp:
                ds.map(fn, batched=True, batch_size=1000, cache_file_name=str(tmp), desc=f"tokenize {split}")
        out[split] = ds.map(fn, batched=True, batch_size=1000, cache_file_name=str(target) if use_cache else None,
                            load_from_cache_file=use_cache, desc=f"tokenize {split}")
    return type(splits)(out)


@contextlib.contextmanager
def writer_folder(cache: Path):
    """A folder of this process inside the cache: a kill mid-write leaves only a folder named after a dead
    process, which the next run removes, never a stray file among the cached ones."""
    folder = cache / f".writer-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_dead_writers(cache: Path) -> None:
    for folder in cache.glob(".writer-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tokenizer_digest(tokenizer) -> str:
    """A digest of the tokenizer's content (vocabulary, normaliser, special tokens), not of where it lives."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    content = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(content.encode()).hexdigest()[:16]


# head+tail at 256 tokens matched 512 on IMDB within noise (docs/results.md), at half the cost
AUTO_MAX_LENGTH_CAP = 256


def model_token_limit(tokenizer) -> int:
    """The most tokens the model reads at once: its tokenizer's limit, at most 512."""
    return min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)


def decided_max_length(requested: int | None, texts, tokenizer, flag: str = "--max-length") -> dict:
    """The one decision of how many tokens a model reads, as {value, source}: `requested` when given (checked
    against the model's limit), else the texts' 99th percentile of token lengths rounded up to a multiple of 8,
    at most AUTO_MAX_LENGTH_CAP and the model's limit. Training decides it once; the run's config and the saved
    model record it, and everything after reads it back."""
    limit = model_token_limit(tokenizer)
    if requested is not None:
        if requested > limit:
            raise SentituneError(f"{flag} {requested}: the model reads at most {limit} tokens; use {limit} or less.")
        return {"value": int(requested), "source": "config"}
    p99 = token_length_percentile(texts, tokenizer, 99)
    cap = min(AUTO_MAX_LENGTH_CAP, limit)
    return {"value": min(max(8, -(-p99 // 8) * 8), cap),
            "source": f"99th percentile of training token lengths ({p99}), rounded up to 8, at most {cap}"}


def token_length_percentile(texts: list[str], tokenizer, q: float = 99) -> int:
    """The q-th percentile of tokens per text, special tokens included, without truncation."""
    import numpy as np

    ids = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return int(np.ceil(np.percentile([len(i) for i in ids], q)))
