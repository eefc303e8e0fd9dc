"""Spatial control: regions of the content image, each painted in its own style.

Gatys, Ecker, Bethge, Hertzmann & Shechtman, "Controlling Perceptual Factors in Neural Style
Transfer" (CVPR 2017), section 4 ("Spatial Control"). Each region ``r`` is given by a soft guide
``T_r`` in [0, 1] at the content's size (a grayscale mask image, or one colour of a label image).
At every style layer ``l`` the guide is carried down to the layer's resolution, ``T_r^l``, and
the style loss of that region compares the *guided* Gram matrix (eq. (5) there)

    ``G_r^l = (F^l * T_r^l)(F^l * T_r^l)^T / sum_k (T_r^l)_k^2``

with the Gram matrix of the region's own style image (the whole painting). Regions without a
style get no style loss (only the content loss), so they stay close to the photo.

Choices made here (named, so they can be compared with the paper):

* Soft boundaries: each mask is blurred with a Gaussian whose standard deviation is ``feather``
  times the long side of the image being optimised (:data:`DEFAULT_FEATHER` = 1 %, i.e. about
  5 px at 512 px), so neighbouring styles blend over a band instead of meeting at a seam. The
  blur is linear, so label-image masks still sum to 1 everywhere after feathering.
* Propagation down the network (:func:`impasto.guides.propagate_guide`): ``"area"`` (the
  default) averages the guide over each layer's stride (2x2 average pooling per VGG pooling
  layer, the "simply down-sampled" guide of the paper); ``"inside"`` keeps only positions whose
  whole receptive field lies in the region (3x3 min-filter per convolution, 2x2 min-pooling per
  pooling layer), the paper's alternative that avoids style leaking across a boundary at deep
  layers but shrinks small regions to nothing there.
* Region weighting: a region's loss at layer ``l`` is multiplied by its weight and by its share
  of the layer's positions (``sum_k (T_r^l)_k^2 / M_l``), so that one region covering the whole
  image reproduces the ordinary style loss exactly and small regions are not over-weighted per
  pixel (see :class:`impasto.objective.Objective`).
* Pixels not covered by any region: unstyled when the run has no global style images; when it
  has some, the global styles paint the rest of the image (the guide ``1 - sum_r T_r``, clipped).

Mask images: the mask value of a pixel is its luminance (``0.299 R + 0.587 G + 0.114 B``)
times its alpha, so white-on-black masks and opaque-on-transparent masks both work. Label
images: a pixel belongs to the listed colour nearest to it, if it is within ``tolerance`` (max
abs difference per channel, in [0, 1]) of it; other pixels belong to no region.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import ImageColor

from .color import luminance
from .errors import ImageError, SettingsError
from .settings import DEFAULT_FEATHER, DEFAULT_LABEL_TOLERANCE, StyleInput

__all__ = [
    "DEFAULT_FEATHER",
    "DEFAULT_LABEL_TOLERANCE",
    "Region",
    "load_guide",
    "label_guides",
    "parse_color",
    "regions_from_labels",
]


@dataclass(frozen=True)
class Region:
    """One region of the content image and the style it is painted in.

    Args:
        mask: the guide: a path, a PIL image, or a tensor ``(H, W)`` / ``(1, 1, H, W)`` in [0, 1]
            (see the module docstring for how images become guides). Resized to the content.
        style: a path, PIL image or :class:`StyleInput` (its ``scale`` and layer set are
            honoured), or None to leave the region unstyled.
        weight: multiplies this region's style loss (> 0; ``beta`` still applies).
        feather: Gaussian blur of the guide, as a fraction of the image's long side (>= 0).
        name: label for metadata and messages (default: the mask's file name).
    """

    mask: Any
    style: Any = None
    weight: float = 1.0
    feather: float = DEFAULT_FEATHER
    name: str | None = None

    def __post_init__(self) -> None:
        if self.style is not None and not isinstance(self.style, StyleInput):
            object.__setattr__(self, "style", StyleInput(self.style))
        if not (_is_number(self.weight) and math.isfinite(self.weight) and self.weight > 0):
            raise SettingsError(f"region weight must be a positive number, got {self.weight!r}")
        if not (_is_number(self.feather) and 0 <= self.feather <= 0.25):  # NaN fails too
            raise SettingsError(f"region feather must be between 0 and 0.25, got {self.feather!r}")
        if self.name is None:
            label = "<mask>"
            if isinstance(self.mask, (str, os.PathLike)):
                label = os.path.basename(os.fspath(self.mask))
            object.__setattr__(self, "name", label)

    @property
    def styled(self) -> bool:
        """Whether the region has a style (unstyled regions keep only the content loss)."""
        return self.style is not None


# --------------------------------------------------------------------------------------------
# guides from images


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_guide(t: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise ImageError(f"{what} must be a floating-point tensor")
    if t.dim() == 2:
        t = t[None, None]
    if t.dim() != 4 or t.shape[:2] != (1, 1) or min(t.shape[-2:]) < 1:
        raise ImageError(f"{what} must be shaped (H, W) or (1, 1, H, W), got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ImageError(f"{what} holds NaN or infinite values")
    return t.detach().float().cpu().clamp(0.0, 1.0)


def _covers_something(guide: torch.Tensor, name: str) -> torch.Tensor:
    """A mask that covers no pixel removed its region's style without a word."""
    if not bool((guide > 0).any()):
        raise SettingsError(
            f"mask {name} covers no pixel (all black or transparent): its region would paint "
            "nothing"
        )
    return guide


def load_guide(source: Any) -> torch.Tensor:
    """A mask image (path, PIL image) or tensor -> guide ``(1, 1, H, W)`` float32 in [0, 1].

    Images give luminance times alpha (white = inside the region).
    """
    if isinstance(source, torch.Tensor):
        return _covers_something(_check_guide(source, "mask"), "<tensor>")
    from .image import load_image

    img = load_image(source)
    y = luminance(img.rgb)
    if img.alpha is not None:
        y = y * img.alpha
    return _covers_something(y.clamp(0.0, 1.0), img.name)


def _unit_rgb(colour: Any) -> tuple[float, float, float]:
    """A colour given as numbers: three in [0, 1] (a 0-255 triple was shown as #fe010000)."""
    try:
        rgb = tuple(float(c) for c in colour)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise SettingsError(
            f"label colour {colour!r}: give three numbers in [0, 1], or a string such as '#ff0000'"
        )
    return rgb  # type: ignore[return-value]


def parse_color(text: str) -> tuple[float, float, float]:
    """A colour as Pillow understands it (``#ff0000``, ``#f00``, ``red``, ``rgb(255,0,0)``) ->
    RGB in [0, 1]."""
    try:
        rgb = ImageColor.getrgb(text.strip())
    except ValueError:
        raise SettingsError(
            f"unknown colour {text!r}; use #rrggbb, a colour name or rgb(r,g,b)"
        ) from None
    return tuple(c / 255.0 for c in rgb[:3])  # type: ignore[return-value]


def label_guides(
    labels: torch.Tensor,
    colors: Sequence[tuple[float, float, float]],
    tolerance: float = DEFAULT_LABEL_TOLERANCE,
) -> list[torch.Tensor]:
    """Hard guides from a colour-coded label image: one ``(1, 1, H, W)`` {0, 1} mask per colour.

    A pixel belongs to the nearest of ``colors`` (Euclidean in RGB) provided its largest
    per-channel difference to it is at most ``tolerance``; otherwise to none. The masks are
    disjoint.

    Args:
        labels: ``(1, 3, H, W)`` RGB in [0, 1].
        colors: RGB triples in [0, 1].
        tolerance: largest per-channel difference accepted (absorbs JPEG noise).
    """
    if labels.dim() != 4 or labels.shape[:2] != (1, 3):
        raise ImageError(f"label image must be (1, 3, H, W), got {tuple(labels.shape)}")
    if not colors:
        return []
    palette = torch.tensor(colors, dtype=torch.float32).view(1, len(colors), 3, 1, 1)
    diff = labels.float().unsqueeze(1) - palette  # (1, K, 3, H, W)
    nearest = diff.pow(2).sum(dim=2).argmin(dim=1)  # (1, H, W)
    close = diff.abs().amax(dim=2) <= tolerance  # (1, K, H, W)
    return [((nearest == k) & close[:, k]).float().unsqueeze(1) for k in range(len(colors))]


def regions_from_labels(
    labels: Any,
    styles: Mapping[Any, Any] | Sequence[tuple[Any, Any]],
    *,
    weights: Mapping[Any, float] | None = None,
    tolerance: float = DEFAULT_LABEL_TOLERANCE,
    feather: float = DEFAULT_FEATHER,
) -> list[Region]:
    """Regions from a colour-coded label image.

    Args:
        labels: path or PIL image of the label image (same aspect as the content).
        styles: ``{colour: style}`` (or ``(colour, style)`` pairs); a colour is a string
            (``"#ff0000"``, ``"red"``) or an RGB triple in [0, 1]; a style is a path, PIL image,
            :class:`StyleInput`, or None for an unstyled region.
        weights: optional ``{colour: region weight}`` (same keys as ``styles``).
        tolerance: see :func:`label_guides`.
        feather: see :class:`Region`.

    Raises:
        SettingsError: a colour matches no pixel of the label image (a likely typo).
    """
    from .image import load_image

    pairs = list(styles.items()) if isinstance(styles, Mapping) else list(styles)
    colors = [parse_color(c) if isinstance(c, str) else _unit_rgb(c) for c, _ in pairs]
    img = load_image(labels)
    masks = label_guides(img.rgb, colors, tolerance)
    out = []
    for (key, style), rgb, mask in zip(pairs, colors, masks):
        shown = key if isinstance(key, str) else "#" + "".join(f"{round(255 * c):02x}" for c in rgb)
        if not bool(mask.any()):
            raise SettingsError(f"label colour {shown} matches no pixel of {img.name}")
        weight = 1.0 if weights is None else float(weights.get(key, 1.0))
        out.append(Region(mask, style, weight=weight, feather=feather, name=f"{img.name} {shown}"))
    return out
