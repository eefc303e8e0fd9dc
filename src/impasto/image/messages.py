"""Small helpers shared by the image modules: one-line error text and path normalisation."""

from __future__ import annotations

import os

__all__ = ["one_line", "path_str"]


def one_line(exc: BaseException) -> str:
    """``"TypeName: message"`` with all whitespace runs collapsed, so it fits on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def path_str(path: str | os.PathLike[str]) -> str:
    """A path-like as ``str`` (bytes paths are decoded with the file-system encoding)."""
    p = os.fspath(path)
    return p if isinstance(p, str) else os.fsdecode(p)
