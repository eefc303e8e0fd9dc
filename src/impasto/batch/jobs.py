"""A batch job: plain, picklable data (it travels to worker processes and Ray actors).

A job's id is a hash of its input bytes, its settings and the impasto version: the same photo and
paintings with the same settings are the same job, whatever their file names, and a changed
input, setting or release is a new one. When the settings give no seed, the job's seed is taken
from its id, so a re-run paints the same picture.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ..checkpoint import file_digest  # re-exported: the batch's outputs and inputs use it
from ..version import __version__

__all__ = ["StyleSpec", "Job", "job_id", "seed_of", "output_stem", "safe_stem", "file_digest"]

ID_CHARS = 16
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StyleSpec:
    """One painting of a job: its path, blend weight and optional scale."""

    path: str
    weight: float = 1.0
    scale: float | None = None


@dataclass
class Job:
    """One photo x painting(s) run of a batch.

    Attributes:
        id: stable id (hex), see :func:`job_id`.
        content: path of the photo.
        styles: the paintings.
        settings: the complete :meth:`impasto.settings.Settings.to_dict`, seed included.
        seed: the seed in use (given, or derived from the id).
        name: output file name inside the batch's output folder ("" when the job cannot run).
        error: why the job fails before it runs (malformed line, missing file), or None.
        source: where it came from, e.g. ``"jobs.jsonl:3"`` or ``"cross"``.
    """

    id: str
    content: str
    styles: tuple[StyleSpec, ...]
    settings: dict[str, Any]
    seed: int
    name: str = ""
    error: str | None = None
    source: str = ""

    def describe(self) -> dict[str, Any]:
        """The job's inputs as recorded in the manifest."""
        return {
            "content": self.content,
            "styles": [
                {"path": s.path, "weight": s.weight, **({"scale": s.scale} if s.scale else {})}
                for s in self.styles
            ],
            "source": self.source,
        }


def _hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:ID_CHARS]


def job_id(
    content_digest: str,
    styles: list[tuple[str, float, float | None]],
    settings: dict[str, Any],
    version: str = __version__,
) -> str:
    """The stable id of a job.

    Args:
        content_digest: :func:`file_digest` of the photo.
        styles: ``(digest, weight, scale)`` per painting.
        settings: the settings dict *as given* (seed None when none was given).
        version: the impasto version.
    """
    return _hash({"c": content_digest, "s": styles, "settings": settings, "v": version})


def error_id(*parts: Any) -> str:
    """An id for a job that cannot run (hash of what described it)."""
    return _hash({"error": parts, "v": __version__})


def seed_of(job_id_hex: str) -> int:
    """A seed in [0, 2**31) derived from a job id (deterministic)."""
    return int(job_id_hex[:15], 16) % (2**31)


def safe_stem(name: str) -> str:
    """A file-name-safe version of ``name``'s stem (runs of odd characters become ``_``)."""
    base = name.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    stem = _UNSAFE.sub("_", stem).strip("._") or "image"
    return stem[:80]


def output_stem(content: str, styles: tuple[StyleSpec, ...]) -> str:
    """``<content>__<style>`` (several paintings joined by ``+``)."""
    style_part = "+".join(safe_stem(s.path) for s in styles) or "nostyle"
    return f"{safe_stem(content)}__{style_part}"
