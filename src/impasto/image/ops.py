"""Tensor <-> PIL conversion and geometry: sizes and antialiased resizing.

Resizing (:func:`resize`) is antialiased bicubic (Keys kernel, a = -0.5, the same filter as
Pillow's ``BICUBIC`` reduce), so shrinking an image does not alias.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .pixels import pil_to_arrays

__all__ = [
    "colour_and_alpha",
    "crop_edges",
    "fit_long_side",
    "pad_edges",
    "quantise",
    "resize",
    "to_pil",
    "to_tensor",
]


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> ``(1, 3, H, W)`` float32 in ``[0, 1]``.

    Meant for ``RGB`` images; other modes are converted as :func:`~impasto.image.load_image`
    would (16-bit grayscale keeps its precision), but without EXIF orientation, colour
    management or alpha.
    """
    if img.mode == "RGB":
        arr = np.asarray(img, dtype=np.float32) / 255.0
    else:
        arr, _, _ = pil_to_arrays(img, "<image>", colour_manage=False)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).unsqueeze(0)


def _as_chw(t: torch.Tensor, channels: int, what: str) -> torch.Tensor:
    """``(1, C, H, W)`` or ``(C, H, W)`` (or ``(H, W)`` when C is 1) -> ``(C, H, W)`` on CPU."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{what} must be a floating-point torch.Tensor")
    t = t.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"{what} must hold one image, got batch size {t.shape[0]}")
        t = t[0]
    elif t.dim() == 2 and channels == 1:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] != channels:
        raise ValueError(f"{what} must have shape (1, {channels}, H, W), got {tuple(t.shape)}")
    return t.to(device="cpu", dtype=torch.float32)


def quantise(t: torch.Tensor, levels: int) -> np.ndarray:
    """``(C, H, W)`` float -> ``(H, W, C)`` integers in [0, levels], rounded to nearest."""
    q = torch.round(t.clamp(0.0, 1.0) * levels).permute(1, 2, 0).contiguous()
    return q.numpy().astype(np.uint8 if levels == 255 else np.uint16)


def colour_and_alpha(
    rgb: torch.Tensor, alpha: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate an image and its optional alpha; return them as ``(3|1, H, W)`` CPU float32.

    Raises:
        TypeError: not floating-point tensors.
        ValueError: wrong shapes, a batch of several images, or sizes that differ.
    """
    colour = _as_chw(rgb, 3, "rgb")
    a = None
    if alpha is not None:
        a = _as_chw(alpha, 1, "alpha")
        if a.shape[1:] != colour.shape[1:]:
            raise ValueError(
                f"alpha size {tuple(a.shape[1:])} differs from rgb size {tuple(colour.shape[1:])}"
            )
    return colour, a


def to_pil(rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> Image.Image:
    """``(1, 3, H, W)`` float tensor (+ optional ``(1, 1, H, W)`` alpha) -> 8-bit PIL image.

    Values are clamped to ``[0, 1]`` and rounded to the nearest 8-bit level (not truncated).
    Returns mode ``RGB``, or ``RGBA`` when ``alpha`` is given.
    """
    colour, a = colour_and_alpha(rgb, alpha)
    if a is not None:
        colour = torch.cat([colour, a], dim=0)
    arr = quantise(colour, 255)
    return Image.fromarray(arr, mode="RGBA" if a is not None else "RGB")


def fit_long_side(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """Scale ``(width, height)`` so that its longer side equals ``long_side``.

    The shorter side is rounded to the nearest integer (halves round up; exact integer
    arithmetic) and is at least 1, so the aspect ratio is kept within rounding.
    """
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {size}")
    if long_side < 1:
        raise ValueError(f"long_side must be >= 1, got {long_side}")
    if width >= height:
        return long_side, max(1, (2 * height * long_side + width) // (2 * width))
    return max(1, (2 * width * long_side + height) // (2 * height)), long_side


def resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` to ``(N, C, h, w)`` for ``size = (w, h)``.

    Bicubic with antialiasing (``torch.nn.functional.interpolate(..., antialias=True)``, the
    same filter as Pillow's ``BICUBIC``), so shrinking low-pass filters first and does not alias.
    The result is clamped to ``[0, 1]`` (bicubic overshoots at edges). Returns ``t`` itself when
    it already has the requested size.
    """
    if t.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(t.shape)}")
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {size}")
    if (height, width) == tuple(t.shape[-2:]):
        return t
    if not t.is_floating_point():
        raise TypeError("resize needs a floating-point tensor")
    out = F.interpolate(
        t, size=(height, width), mode="bicubic", align_corners=False, antialias=True
    )
    return out.clamp_(0.0, 1.0)


def crop_to_aspect(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The centre of ``(N, C, H, W)`` with the aspect ratio of ``size = (w, h)``, as a cover
    fit crops it: resized to ``size`` afterwards, nothing is stretched. Returns ``t`` itself
    when resizing it to ``size`` would stretch it by less than one pixel of ``size`` (the
    rounding of an output size), so an image of the output's aspect ratio is never cut."""
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {size}")
    th, tw = t.shape[-2:]
    if abs(tw * height / th - width) < 1 and abs(th * width / tw - height) < 1:
        return t
    if tw * height > th * width:  # wider than the target: the sides go
        keep = max(1, round(th * width / height))
        left = (tw - keep) // 2
        return t if keep == tw else t[..., :, left : left + keep]
    keep = max(1, round(tw * height / width))
    top = (th - keep) // 2
    return t if keep == th else t[..., top : top + keep, :]


def pad_edges(t: torch.Tensor, margin: int, mode: str = "reflect") -> torch.Tensor:
    """``(N, C, H, W)`` with ``margin`` pixels added on every side: the image mirrored into them
    (``"reflect"``, without repeating the edge pixel) or its edge pixels repeated
    (``"replicate"``, for masks). Returns ``t`` itself when ``margin`` is 0; an image too small
    to mirror that far (``margin >= H`` or ``W``) is replicated."""
    if margin == 0:
        return t
    if mode == "reflect" and margin >= min(t.shape[-2:]):
        mode = "replicate"
    return F.pad(t, (margin, margin, margin, margin), mode=mode)


def crop_edges(t: torch.Tensor, margin: int) -> torch.Tensor:
    """``(N, C, H, W)`` without ``margin`` pixels on every side (the inverse of
    :func:`pad_edges`)."""
    if margin == 0:
        return t
    return t[..., margin:-margin, margin:-margin]
