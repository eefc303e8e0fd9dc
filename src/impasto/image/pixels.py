"""Decoded Pillow images -> float32 arrays in [0, 1]: every mode Pillow can hand over.

8-bit modes (``1``, ``L``, ``P``, ``LA``, ``RGB``, ``RGBA``, ``CMYK``, ...) are normalised to
colour plus optional alpha; high-precision modes (``I;16*``, ``I``, ``F``) keep their precision.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageCms

from .colour_management import float_to_srgb, is_srgb, parse_profile, pil_to_srgb

__all__ = ["float_from_high_precision", "pil_to_arrays"]

Arrays = tuple[np.ndarray, np.ndarray | None, int]
"""(colour ``(H, W, 3)`` float32, alpha ``(H, W)`` float32 or None, source bits)."""


def float_from_high_precision(arr: np.ndarray) -> np.ndarray:
    """Integer or float samples of a high-bit-depth source -> float32 in [0, 1].

    ``uint16`` is divided by 65535, ``uint32`` by 2**32 - 1, other integers (Pillow mode ``I``)
    are taken as 16-bit values and clipped to [0, 65535]. Floats are taken as [0, 1] when no
    value exceeds 1 and as Pillow's 0-255 scale otherwise (a 0-255 image whose values are all
    <= 1 is black either way).
    """
    if arr.dtype.kind == "f":
        out = np.nan_to_num(arr.astype(np.float32), nan=0.0)
        if out.size and float(out.max()) > 1.0:
            out = out / 255.0
        return np.clip(out, 0.0, 1.0)
    if arr.dtype == np.uint16 or arr.dtype == np.dtype(">u2"):
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == np.uint32:
        return (arr.astype(np.float64) / 4294967295.0).astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(arr.astype(np.float32), 0.0, 65535.0) / 65535.0


def _high_precision_to_arrays(
    im: Image.Image, profile: ImageCms.ImageCmsProfile | None, label: str
) -> Arrays:
    """Modes ``I;16*``, ``I`` and ``F`` (one channel): gray, optional key alpha, 16 bits."""
    data = np.asarray(im)
    alpha = None
    if "transparency" in im.info and isinstance(im.info["transparency"], int):
        alpha = (data != im.info["transparency"]).astype(np.float32)
    gray = float_from_high_precision(data)[..., None]
    colour = float_to_srgb(gray, profile, label) if profile is not None else None
    if colour is None:
        colour = np.repeat(gray, 3, axis=-1)
    return colour, alpha, 16


def _normalise_8bit_mode(im: Image.Image) -> Image.Image:
    """The many 8-bit modes -> ``L``, ``RGB``, ``CMYK`` (etc.), or ``LA``/``RGBA`` with alpha."""
    mode = im.mode
    if mode in ("P", "PA"):
        return im.convert("RGBA" if im.has_transparency_data else "RGB")
    if mode == "1":
        return im.convert("L")
    if mode == "La":
        return im.convert("LA")
    if mode == "RGBa":
        return im.convert("RGBA")
    if mode == "RGBX":
        return im.convert("RGB")
    if mode in ("L", "RGB") and "transparency" in im.info:
        return im.convert("LA" if mode == "L" else "RGBA")
    return im


def pil_to_arrays(im: Image.Image, label: str, *, colour_manage: bool) -> Arrays:
    """Decoded PIL image -> (colour ``(H, W, 3)`` float32, alpha ``(H, W)`` or None, bits).

    Args:
        im: a loaded Pillow image (any mode).
        label: the file name used in warnings.
        colour_manage: convert from an embedded, non-sRGB ICC profile to sRGB.
    """
    icc = im.info.get("icc_profile") if colour_manage else None
    profile = parse_profile(icc, label) if icc else None
    if profile is not None and is_srgb(profile):
        profile = None
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        return _high_precision_to_arrays(im, profile, label)

    im = _normalise_8bit_mode(im)
    alpha = None
    if im.mode in ("LA", "RGBA"):
        alpha = np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
        im = im.convert(im.mode[:-1])
    if profile is not None and im.mode in ("L", "RGB", "CMYK"):
        converted = pil_to_srgb(im, profile, label)
        if converted is not None:
            im = converted
    if im.mode == "L":
        gray = np.asarray(im, dtype=np.float32) / 255.0
        return np.repeat(gray[..., None], 3, axis=-1), alpha, 8
    if im.mode != "RGB":
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return np.asarray(im, dtype=np.float32) / 255.0, alpha, 8
