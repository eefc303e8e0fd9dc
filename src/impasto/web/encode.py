"""Image encoding for the web: clamped copies of the live image, preview PNGs and thumbnails.

:attr:`impasto.callbacks.Iterate.image` is a live view of the optimiser's image (unclamped, and
changed in place by the next step): :func:`snapshot` makes the clamped copy the studio keeps.
Thumbnails are made with Pillow's reduced decoding (``draft``/``reduce``), never a full float
copy, so a large upload costs about its 8-bit pixel buffer to accept.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

__all__ = ["snapshot", "png_bytes", "write_partial", "thumbnail", "thumbnail_png", "THUMB_SIDE"]

THUMB_SIDE = 256


def snapshot(image: torch.Tensor) -> torch.Tensor:
    """A clamped ``[0, 1]`` float32 CPU copy of a live image (never a view of it)."""
    return image.detach().float().cpu().clamp(0, 1)  # clamp is out of place: a copy


def png_bytes(image: torch.Tensor) -> bytes:
    """A fast-compressed PNG of a ``(1, 3, H, W)`` image in [0, 1]."""
    from ..image import to_pil

    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_partial(image: torch.Tensor, path: Path, meta: dict[str, Any]) -> None:
    """Save an unfinished job's image (atomically) with ``meta`` in its text metadata."""
    from ..image import save_image

    save_image(image, path, metadata={"impasto": json.dumps({**meta, "partial": True})})


def _to_srgb(im: Image.Image) -> Image.Image:
    """An RGB image from its embedded ICC profile to sRGB, as the engine's loader converts it
    (:mod:`impasto.image.colour_management`): a profile that says it is sRGB is taken as-is, an
    unreadable or unusable one is ignored (with the loader's warning)."""
    from ..image.colour_management import is_srgb, parse_profile, pil_to_srgb

    icc = im.info.get("icc_profile")
    if not icc or im.mode != "RGB":
        return im
    profile = parse_profile(icc, "upload")
    if profile is None or is_srgb(profile):
        return im
    return pil_to_srgb(im, profile, "upload") or im


def thumbnail(im: Image.Image, side: int = THUMB_SIDE) -> Image.Image:
    """An RGB thumbnail (long side at most ``side``) of an opened image, EXIF orientation and
    ICC profile applied. Decodes at a reduced scale where the format allows (JPEG)."""
    from ..image import decode_unmapped_if_turned

    im.getexif()  # read (and kept) before the pixels are replaced by the thumbnail's
    decode_unmapped_if_turned(im)  # a turned grey TIFF decoded scrambled
    im.draft("RGB", (side, side))
    im.thumbnail((side, side), reducing_gap=2.0)  # decodes once, then shrinks in place
    small = ImageOps.exif_transpose(im)
    if small.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # high bit depth grey: to 8 bits
        arr = np.asarray(small, dtype=np.float32)
        top = 1.0 if small.mode == "F" else 65535.0
        small = Image.fromarray((np.clip(arr / top, 0, 1) * 255).round().astype(np.uint8))
    if small.mode not in ("RGB", "RGBA"):
        small = small.convert("RGBA" if "A" in small.getbands() else "RGB")
    return _to_srgb(small)


def thumbnail_png(path: Path, side: int = THUMB_SIDE) -> bytes:
    """PNG bytes of :func:`thumbnail` of an image file."""
    with Image.open(path) as im:
        small = thumbnail(im, side)
    buf = io.BytesIO()
    small.save(buf, format="PNG")
    return buf.getvalue()
