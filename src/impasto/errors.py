"""One exception root for every user-facing failure.

The CLI maps :class:`ImpastoError` to a one-line message and ``exit_code``; the web app maps it to
an HTTP 4xx answer. Library code raises these and never calls ``sys.exit`` or prints.
"""

from __future__ import annotations

__all__ = [
    "ImpastoError",
    "ImageError",
    "WeightsError",
    "SettingsError",
    "CheckpointError",
    "Cancelled",
]


class ImpastoError(Exception):
    """Base class of impasto's user-facing errors."""

    exit_code = 2


class ImageError(ImpastoError):
    """An input image is missing, unreadable, truncated, too small or too large, or an output
    path is unusable."""


class WeightsError(ImpastoError):
    """Network weights are missing or in an unknown or inconsistent format."""


class SettingsError(ImpastoError, ValueError):
    """A setting is out of range or inconsistent with another (bad layer names included)."""


class CheckpointError(ImpastoError):
    """A checkpoint is missing, unreadable, of another format, or does not match the run."""


class Cancelled(ImpastoError):
    """A run was cancelled (Ctrl-C, a web cancel request, or a callback asking to stop)."""

    exit_code = 130
