"""Where textgym finds its shared data and keeps its caches, and how it writes files.

A leaf module (standard library only), so that any module can locate the data, the oracle's
weights included, without importing the data sets of :mod:`textgym.data`, and write a file that
an interruption cannot leave half written (:func:`atomic_write_bytes`).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Optional


def data_dir() -> Optional[Path]:
    """The data directory: ``$TEXTGYM_DATA``, else ``../shared/data`` beside the checkout; None if absent.

    FileNotFoundError when ``$TEXTGYM_DATA`` names no directory: a mistyped path would otherwise
    fall back to a freshly initialized oracle, whose numbers compare with nothing.
    """
    env = os.environ.get("TEXTGYM_DATA")
    if env:
        if not Path(env).is_dir():
            raise FileNotFoundError(f"TEXTGYM_DATA={env} is not a directory; point it at the data folder, or unset it "
                                    "to use ../shared/data beside the checkout")
        return Path(env)
    candidate = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def data_path(*parts: str) -> Optional[Path]:
    """``data_dir()/parts`` if that file exists, else None."""
    root = data_dir()
    if root is None:
        return None
    p = root.joinpath(*parts)
    return p if p.exists() else None


def cache_dir() -> Path:
    """Where deterministic artifacts are cached: ``$TEXTGYM_CACHE``, else ``~/.cache/textgym``."""
    return Path(os.environ.get("TEXTGYM_CACHE") or Path.home() / ".cache" / "textgym")


TMP_MARK = ".tmp-"  # atomic writes write ".NAME.tmp-PID-THREAD" beside NAME, then rename it over NAME


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is an atomic write's temporary file (one a kill left behind, if no write is running)."""
    return path.name.startswith(".") and TMP_MARK in path.name


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over ``path`` (over the
    file a symbolic link names; a pipe or device is written directly). The
    temporary file is the writer's own (process and thread): two threads writing one path (the
    background checkpoint writer, a study recording a warning) would otherwise share it."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a pipe or a device (--json /dev/stdout): nothing to rename over
        with open(path, "wb") as f:
            f.write(payload)
        return
    path = path.resolve() if path.is_symlink() else path  # write the file a link names, keeping the link
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # an error, Ctrl-C or SIGTERM: no temporary file is left behind (a kill still leaves one)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX; some network mounts refuse)
        with contextlib.suppress(OSError):
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())
