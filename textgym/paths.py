"""Where textgym finds its shared data and keeps its caches.

A leaf module (standard library only), so that any module can locate the data, the oracle's
weights included, without importing the data sets of :mod:`textgym.data`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


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
