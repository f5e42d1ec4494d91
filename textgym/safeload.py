"""Reading ``torch.save`` files as data, never as code.

:func:`load_data_only` is ``torch.load(..., weights_only=True)``: tensors and plain data (dicts,
lists, tuples, strings, numbers, bytes) come back; an object whose unpickling would import or
call anything is refused before it runs, with :class:`UnsafeFileError`. Other failures (not a
torch file, truncated) propagate as they are, so callers can tell "corrupt" from "unsafe".
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any, Union

import torch


class UnsafeFileError(ValueError):
    """The file holds objects other than tensors and plain data; nothing of it was run."""


def load_data_only(f: Union[str, os.PathLike, io.BytesIO], what: str) -> Any:
    """``torch.load(f, map_location="cpu", weights_only=True)``; UnsafeFileError naming ``what``
    when the file holds anything else than tensors and plain data."""
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # a global (class, function) the weights-only unpickler would not import: that is the
        # refusal; anything else (an unknown opcode of a file that is no pickle) is corruption
        if "unsupported global" in str(exc).lower() or "unsupported class" in str(exc).lower():
            raise UnsafeFileError(f"{what} holds objects other than tensors and plain data; refused without loading "
                                  "them") from None
        raise
