"""What the web accepts on top of the engine's own rules: image references, no server paths,
and the server's limits on size and total work.

The engine's :class:`~impasto.settings.Settings` validates every value (types, ranges, choices,
combinations) when a request body is parsed; this module adds only what depends on the server: a
client never names a file on it, and a job's total work across its pyramid is bounded.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .. import examples
from ..choices import INITS
from ..errors import SettingsError
from ..image import oriented_size
from ..inputs import EXAMPLE_PREFIX, resolve_input
from ..schedule import scales_of
from ..settings import Settings
from .capacity import Capacity, check_memory
from .config import WebConfig
from .store import Store

__all__ = [
    "check_server_rules",
    "check_batch_rules",
    "job_work",
    "job_aspect",
    "resolve_image",
    "image_size",
    "example_names",
    "example_path",
    "header_size",
]


def example_names() -> dict[str, tuple[str, str]]:
    """Bundled examples: stem -> (file name, kind)."""
    out = {Path(n).stem: (n, "content") for n in examples.CONTENT}
    out.update({Path(n).stem: (n, "style") for n in examples.STYLES})
    return out


def example_path(ref: Any) -> Path | None:
    """The bundled example an ``example:NAME`` reference names, read as every surface reads it
    (:func:`impasto.inputs.resolve_input`); None for any other reference or an unknown name."""
    if not isinstance(ref, str) or not ref.startswith(EXAMPLE_PREFIX):
        return None
    try:
        return Path(resolve_input(ref))
    except SettingsError:
        return None


def _unknown(ref: Any) -> SettingsError:
    shown = ref if isinstance(ref, str) and len(ref) <= 60 else type(ref).__name__
    return SettingsError(f"unknown image {shown!r}: upload it first or pick a bundled example")


def resolve_image(store: Store, ref: Any, kinds: tuple[str, ...] = ("upload",)) -> Path:
    """The path of an image reference: the id of a stored file of one of ``kinds`` (uploads by
    default), or ``example:NAME`` for a bundled example.

    Raises:
        SettingsError: the reference names no stored file and no bundled example.
    """
    path = example_path(ref)
    if path is not None:
        return path
    rec = store.get_file(ref)
    if rec is not None and rec.kind in kinds and store.path_of(rec).is_file():
        return store.path_of(rec)
    raise _unknown(ref)


def image_size(store: Store, ref: Any) -> tuple[int, int]:
    """``(width, height)`` of an image reference, from the store or the example's header."""
    path = example_path(ref)
    if path is not None:
        return header_size(path)
    rec = store.get_file(ref)
    if rec is None or not rec.width or not rec.height:
        raise _unknown(ref)
    return rec.width, rec.height


@functools.lru_cache(maxsize=32)
def header_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, from its header (cached: for bundled files)."""
    with Image.open(path) as im:
        return oriented_size(im)


def job_aspect(
    store: Store, content: str | None, styles: Sequence[dict[str, Any]]
) -> tuple[int, int]:
    """``(width, height)`` of the image that gives a job its aspect ratio, and so its scales and
    its work: the photo, else the first painting (``styles``: ``{"image", ...}`` per painting).

    Raises:
        SettingsError: the image is unknown, or the job has none.
    """
    ref = content if content is not None else (styles[0]["image"] if styles else None)
    return image_size(store, ref)


def job_work(settings: Settings, aspect: tuple[int, int]) -> tuple[float, int]:
    """(megapixel-iterations, iterations) of a job over all its pyramid scales."""
    scales = scales_of(settings, aspect)
    work = sum(sc.canvas[0] * sc.canvas[1] * sc.iterations for sc in scales) / 1e6
    return work, sum(sc.iterations for sc in scales)


def check_server_rules(
    settings: Settings,
    aspect: tuple[int, int],
    config: WebConfig,
    capacity: Capacity | None = None,
) -> tuple[float, int]:
    """Refuse what this server does not run; returns the job's :func:`job_work`
    (megapixel-iterations, iterations).

    ``capacity``: the server's memory budget; a job above its size limit, or whose full-size
    scale cannot fit it even in tiles, is refused (:func:`impasto.web.capacity.check_memory`).

    Raises:
        SettingsError: a path in ``init`` or ``weights``, or a limit exceeded (the message names
            the limit).
    """
    s = settings
    if s.init not in INITS:
        raise SettingsError(f"init: must be one of {', '.join(INITS)} on the web (got {s.init!r})")
    if s.weights is not None or s.weights_format != "auto":
        raise SettingsError("weights: cannot be chosen through the web app")
    if config.max_size is not None and s.size > config.max_size:
        raise SettingsError(f"size: at most {config.max_size} px on this server (got {s.size})")
    if capacity is not None:
        check_memory(s, aspect, capacity)
    work, steps = job_work(s, aspect)
    if steps > config.max_iterations:
        raise SettingsError(
            f"iterations: {steps:,} over all scales; this server's limit (max_iterations) is "
            f"{config.max_iterations:,}"
        )
    if work > config.max_work:
        raise SettingsError(
            f"work: {work:,.0f} megapixel-iterations over all scales; this server's limit "
            f"(max_work) is {config.max_work:,.0f}"
        )
    return work, steps


def check_batch_rules(
    settings: Settings,
    aspects: list[tuple[int, int]],
    config: WebConfig,
    capacity: Capacity | None = None,
) -> float:
    """:func:`check_server_rules` for a batch: every job's own rules, then the work of all its
    jobs together (one job per aspect, the photos' sizes) against ``max_work``.

    Returns:
        The batch's total work (megapixel-iterations).

    Raises:
        SettingsError: a job breaks a rule, or the batch's total work exceeds ``max_work``.
    """
    total = 0.0
    for aspect in aspects:
        total += check_server_rules(settings, aspect, config, capacity)[0]
    if total > config.max_work:
        raise SettingsError(
            f"work: {total:,.0f} megapixel-iterations over the batch's {len(aspects)} jobs; "
            f"this server's limit (max_work) is {config.max_work:,.0f}"
        )
    return total
