"""Colour management: embedded ICC profiles -> sRGB, and the sRGB profile embedded in outputs.

Pillow's :mod:`PIL.ImageCms` (LittleCMS) does the conversions. It only handles 8-bit data, so
16-bit sources go through a lookup table (:func:`float_to_srgb`). Profiles that describe
themselves as sRGB are taken as-is (no round trip through LittleCMS).
"""

from __future__ import annotations

import io
import struct
import warnings
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageCms

from .messages import one_line

__all__ = [
    "float_to_srgb",
    "is_srgb",
    "parse_profile",
    "pil_to_srgb",
    "srgb_profile",
    "srgb_profile_bytes",
]

# Grid of the 3-D lookup table used to colour-manage 16-bit sources (52 nodes = every 5th
# 8-bit level, so each node is exactly representable as an 8-bit LittleCMS input).
_LUT_STEP = 5
# ICC header bytes 24-35 hold the profile's creation time (six big-endian uint16). LittleCMS
# writes the current time there; a fixed date makes every output file reproducible.
_ICC_DATE = slice(24, 36)
_FIXED_DATE = struct.pack(">6H", 2000, 1, 1, 0, 0, 0)


@lru_cache(maxsize=1)
def srgb_profile() -> ImageCms.ImageCmsProfile:
    """LittleCMS's built-in sRGB profile: the target of every conversion."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=1)
def srgb_profile_bytes() -> bytes:
    """The ICC profile embedded in every output: :func:`srgb_profile`, serialised.

    Its creation date is fixed (2000-01-01), so the bytes do not depend on when they were made.
    """
    data = bytearray(srgb_profile().tobytes())
    data[_ICC_DATE] = _FIXED_DATE  # the profile ID (MD5, bytes 84-99) is left unset (zero)
    return bytes(data)


def is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    """Whether an ICC profile says it is (gamma-encoded) sRGB, so no conversion is needed."""
    try:
        description = ImageCms.getProfileDescription(profile).lower()
    except ImageCms.PyCMSError:
        return False
    return "srgb" in description and "linear" not in description


def parse_profile(icc: bytes, label: str) -> ImageCms.ImageCmsProfile | None:
    """Parse embedded ICC bytes; warn and return ``None`` when they are unreadable."""
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        warnings.warn(f"{label}: ignoring unreadable ICC profile ({one_line(exc)})", stacklevel=4)
        return None


def _profile_space(profile: ImageCms.ImageCmsProfile) -> str:
    """The profile's colour space: ``"RGB"``, ``"GRAY"``, ``"CMYK"``, ..."""
    return profile.profile.xcolor_space.strip().upper()


def pil_to_srgb(
    colour: Image.Image, profile: ImageCms.ImageCmsProfile, label: str
) -> Image.Image | None:
    """Convert an ``L``/``RGB``/``CMYK`` image from ``profile`` to sRGB ``RGB``.

    Returns ``None`` (after a warning) when the profile does not fit the image's mode.
    """
    space = _profile_space(profile)
    wanted = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}.get(space)
    if wanted is None or wanted != colour.mode:
        warnings.warn(
            f"{label}: ignoring ICC profile for colour space {space!r} on a {colour.mode} image",
            stacklevel=4,
        )
        return None
    try:
        transform = ImageCms.buildTransform(profile, srgb_profile(), colour.mode, "RGB")
        return ImageCms.applyTransform(colour, transform)
    except ImageCms.PyCMSError as exc:
        warnings.warn(f"{label}: ignoring unusable ICC profile ({one_line(exc)})", stacklevel=4)
        return None


def _gray_float_to_srgb(
    gray: np.ndarray, profile: ImageCms.ImageCmsProfile, label: str
) -> np.ndarray | None:
    """``(H, W)`` gray in [0, 1] -> sRGB ``(H, W, 3)`` through a 256-entry table."""
    ramp = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(1, 256), mode="L")
    converted = pil_to_srgb(ramp, profile, label)
    if converted is None:
        return None
    table = np.asarray(converted, dtype=np.float32)[0] / 255.0  # (256, 3)
    x = gray * 255.0
    return np.stack(
        [np.interp(x, np.arange(256), table[:, c]).astype(np.float32) for c in range(3)], axis=-1
    )


def _rgb_float_to_srgb(
    colour: np.ndarray, profile: ImageCms.ImageCmsProfile, label: str
) -> np.ndarray | None:
    """``(H, W, 3)`` in [0, 1] -> sRGB through a 52**3-node table, trilinear interpolation."""
    levels = np.arange(0, 256, _LUT_STEP, dtype=np.uint8)
    n = len(levels)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    grid = np.stack([r, g, b], axis=-1).reshape(n * n, n, 3)
    converted = pil_to_srgb(Image.fromarray(grid, mode="RGB"), profile, label)
    if converted is None:
        return None
    lut = torch.from_numpy(np.asarray(converted, dtype=np.float32).reshape(n, n, n, 3) / 255.0)
    lut = lut.permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, R, G, B)
    h, w, _ = colour.shape
    coords = torch.from_numpy(np.ascontiguousarray(colour, dtype=np.float32)) * 2.0 - 1.0
    # grid_sample's last dimension is (x, y, z) = (B index, G index, R index).
    coords = coords.flip(-1).reshape(1, 1, h, w, 3)
    out = F.grid_sample(lut, coords, mode="bilinear", align_corners=True)
    return out[0, :, 0].permute(1, 2, 0).clamp(0.0, 1.0).numpy()


def float_to_srgb(
    colour: np.ndarray, profile: ImageCms.ImageCmsProfile, label: str
) -> np.ndarray | None:
    """Convert a float ``(H, W, 1|3)`` image in [0, 1] from ``profile`` to sRGB ``(H, W, 3)``.

    Pillow's colour management only handles 8-bit data, so 16-bit sources go through a lookup
    table: LittleCMS converts a grid of colours (every 5th 8-bit level on each axis, 52**3 nodes
    for RGB; all 256 levels for gray) and the pixels are interpolated (trilinear / linear) in
    it. Smooth 16-bit gradients stay smooth; the absolute error is about that of 8-bit data.
    Returns ``None`` (after a warning) when the profile does not fit.
    """
    channels = colour.shape[-1]
    space = _profile_space(profile)
    if space == "GRAY" and channels == 1:
        return _gray_float_to_srgb(colour[..., 0], profile, label)
    if space == "RGB" and channels == 3:
        return _rgb_float_to_srgb(colour, profile, label)
    warnings.warn(
        f"{label}: ignoring ICC profile for colour space {space!r} on a {channels}-channel image",
        stacklevel=4,
    )
    return None
