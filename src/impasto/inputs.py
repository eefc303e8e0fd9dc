"""Where an input names its image: ``example:NAME`` (a bundled example) or a path.

Shared by every surface (CLI, batch, web), so an input means the same everywhere.
"""

from __future__ import annotations

from . import examples
from .errors import SettingsError

__all__ = ["EXAMPLE_PREFIX", "resolve_input"]

EXAMPLE_PREFIX = "example:"


def resolve_input(text: str) -> str:
    """``example:NAME`` -> the bundled example's path; anything else unchanged."""
    if text.startswith(EXAMPLE_PREFIX):
        try:
            return str(examples.path(text[len(EXAMPLE_PREFIX) :]))
        except KeyError as e:
            raise SettingsError(e.args[0]) from None
    return text
