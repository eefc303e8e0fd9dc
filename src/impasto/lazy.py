"""Names a package exports but imports on first use (PEP 562's module ``__getattr__``), so that
``import impasto`` and the ``impasto`` command's parser do not load torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr", "lazy_dir"]


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a sub-module,
    relative to it) the first time ``name`` is asked for, and keeps the value in the package."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__


def lazy_dir(names: list[str]) -> Callable[[], list[str]]:
    """A module ``__dir__`` listing ``names`` (its ``__all__``, lazy ones included), so that
    ``dir()`` and tab completion show what the package exports before it is imported."""

    def __dir__() -> list[str]:
        return sorted(names)

    return __dir__
