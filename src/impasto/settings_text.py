"""How each :class:`~impasto.settings.Settings` field reads from text: the argparse types of
the command line's flags, which a sweep's ``--values`` read the same way (comma-separated
numbers and names, ``Literal`` choices, ``20G`` memory sizes).

Nothing here imports torch, so ``impasto --help`` answers at once.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable
from typing import Any

from .errors import SettingsError

__all__ = ["split", "floats", "strings", "flag_kind", "flag_type", "memory_size"]


def split(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def floats(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated numbers."""
    try:
        return tuple(float(t) for t in split(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def strings(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated names."""
    return tuple(split(text))


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` -> X; ``X | None`` -> X."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        return _unwrap(tp)
    return tp


def flag_kind(tp: Any) -> tuple[Callable[[str], Any] | None, tuple[str, ...] | None]:
    """argparse ``(type, choices)`` for a Settings field's annotation."""
    tp = _unwrap(tp)
    if typing.get_origin(tp) is typing.Literal:
        return None, tuple(typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        inner = _unwrap(typing.get_args(tp)[0])
        return (floats if inner is float else strings), None
    return tp, None


def memory_size(text: str) -> int:
    """argparse type: ``20G``, ``512M``, ``1.5GB`` or a number of bytes."""
    from .memory import parse_bytes

    try:
        return parse_bytes(text)
    except SettingsError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# Settings whose flag reads another notation than the field's type.
_FLAG_TYPES: dict[str, Callable[[str], Any]] = {"max_memory": memory_size}


def flag_type(name: str, hint: Any) -> Callable[[str], Any] | None:
    """How the flag of Settings field ``name`` (annotation ``hint``) reads its text."""
    return _FLAG_TYPES.get(name, flag_kind(hint)[0])
