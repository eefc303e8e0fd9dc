"""Bundled example images (see CREDITS.md): ``path(name)`` gives a file's path."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DIR", "CONTENT", "STYLES", "path"]

DIR = Path(__file__).resolve().parent
CONTENT = ("chelsea.png", "coffee.png", "rocket.jpg")
STYLES = ("starry_night.jpg", "great_wave.jpg", "the_scream.jpg", "composition_viii.jpg")


def path(name: str) -> Path:
    """Path of a bundled example image by file name (``"chelsea.png"``) or stem (``"chelsea"``)."""
    for candidate in (*CONTENT, *STYLES):
        if name in (candidate, Path(candidate).stem):
            return DIR / candidate
    names = ", ".join(f"example:{Path(c).stem}" for c in (*CONTENT, *STYLES))
    raise KeyError(f"no bundled example {name!r}; available: {names}")
