"""Writes that readers never see half done: a file or a folder appears complete or not at all."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import shutil
from pathlib import Path

import yaml

from .errors import SentituneError


@contextlib.contextmanager
def atomic_file(path: str | Path, folder: str | Path | None = None):
    """Yield a temporary path in `folder` (default: beside `path`); once the block ends it is renamed over `path`
    (readers never see half a file), and on error it is removed. `folder` must be on the same file system."""
    path = Path(path)
    folder = Path(folder) if folder is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary sibling."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def replace_dir(source: Path, target: Path) -> Path:
    """Move the finished folder `source` to `target` by renames: an existing `target` is moved aside first and
    removed last, so a kill at any point leaves either the old or the new folder complete."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    source.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


@contextlib.contextmanager
def atomic_dir(target: str | Path):
    """Yield a temporary sibling folder; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def exclusive_lock(path: str | Path, busy: str):
    """Hold an exclusive lock on the file `path` (created, and removed at the end) while the block runs; when another
    process holds it, raise SentituneError(`busy`) at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise SentituneError(busy) from None
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()  # the holder removed the file between our open and our lock: lock the one there now
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()


DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "os error 28", "os error 122")
# torch.save's PytorchStreamWriter reports a short write without an errno ("unexpected pos", "file write failed"),
# numpy's a short write as an OSError without one: counted as a full disk when little space is left where it wrote
SHORT_WRITE_WORDS = ("unexpected pos", "failed writing", "file write failed", "requested and")
LOW_SPACE = 16 << 20
RESUME_AFTER_FREEING = "free some space, then run the same command with --resume to continue"


def free_bytes(folder: str | Path) -> int:
    """Free bytes on the file system that holds `folder` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def disk_full(exc: BaseException, folder: str | Path | None = None) -> bool:
    """Whether `exc` (or an exception it was raised from) says a write found no space left; `folder`: where the
    work was writing, to recognise the short writes that come without an errno."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS or any(w in text for w in DISK_FULL_WORDS):
            return True
        if folder is not None and (any(w in text for w in SHORT_WRITE_WORDS) or isinstance(exc, OSError)
                                   and exc.errno is None) and free_bytes(folder) < LOW_SPACE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_space_checked(where, hint: str = "free some space, then run the same command again"):
    """Decorate a stage so that a write that finds the disk full ends it with one line (SentituneError, exit code 2)
    instead of a traceback; `where(*args, **kwargs)` gives (what to name, the folder it writes to). What the stage
    wrote before stays as it was: its writes are atomic, so a full disk leaves no half-written file behind."""
    def decorate(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                what, folder = where(*args, **kwargs)
                if not disk_full(exc, folder):
                    raise
                left = f" ({free_bytes(folder) / 1e6:.1f} MB free)" if folder is not None else ""
                raise SentituneError(f"{what}: no space left on the device that holds {folder or 'the output'}"
                                     f"{left}; {hint}.") from None
        return run
    return decorate


def decode_utf8(raw: bytes, where: str) -> str:
    """`raw` as UTF-8 text; one-line error naming `where` and the byte offset otherwise."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SentituneError(f"{where}: invalid UTF-8 at byte offset {exc.start}; "
                             "re-encode the file as UTF-8.") from None


def read_yaml(path: str | Path, flag: str):
    """A YAML file's content ({} when empty); one-line errors naming `flag` for a missing or invalid file."""
    path = Path(path)
    if not path.is_file():
        raise SentituneError(f"{flag} {path}: file not found.")
    text = decode_utf8(path.read_bytes(), f"{flag} {path}")
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SentituneError(f"{flag} {path}: not valid YAML ({(str(exc).splitlines() or ['?'])[0]}).") from None
    except RecursionError:
        raise SentituneError(f"{flag} {path}: nested too deeply to read; flatten the file.") from None
