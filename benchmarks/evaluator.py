"""The fixed, tool-independent quality measure for the benchmark.

Every tool's output (and each of its intermediate images) is scored by the same VGG19 (the
original weights, MAX pooling, fp32), whatever that tool optimised internally:

* content error, relative: ``||F(x) - F(p)||^2 / ||F(p)||^2`` at ``relu4_2``, with ``x`` the
  output and ``p`` the content image (the content representation of Gatys et al. 2016, eq. 1,
  made relative so it is free of the network's feature scale);
* style error, relative: the mean over ``relu1_1 ... relu5_1`` of
  ``||G(x) - G(a)||^2 / ||G(a)||^2`` with ``a`` the style image and
  ``G = F F^T / M`` the Gram matrix (Gatys et al. 2016, eq. 3) divided by the number of
  positions ``M`` so that images of slightly different pixel counts are comparable (eq. 4's
  ``1/(4 N^2 M^2)`` factor cancels in the ratio).

Both are evaluated at the output's resolution: the content image is resized to the output's
exact size, the style image to the same pixel AREA as the output keeping its own aspect ratio
(Pillow, LANCZOS). 0 means identical representations; lower is better.

Example::

    scorer = PairScorer(content, style)
    curve = [(t, scorer.score(p)) for t, p in run.snapshots]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = [
    "CONTENT_LAYER",
    "STYLE_LAYERS",
    "Encoder",
    "default_encoder",
    "load_rgb",
    "area_matched_size",
    "gram",
    "relative_error",
    "PairScorer",
    "evaluate",
]

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
_MIN_SIDE = 16  # relu5_1 is 1/16 of the input

ImageLike = str | Path | Image.Image
#: ``enc(x, layers=...) -> {name: (1, C, h, w) fp32}`` with ``x`` RGB in [0, 1], (1, 3, H, W).
Encoder = Callable[..., Mapping[str, torch.Tensor]]


@functools.lru_cache(maxsize=4)
def default_encoder(device: str = "cpu") -> Encoder:
    """impasto's frozen VGG19 (original weights, MAX pooling, fp32) on ``device``, loaded once."""
    from impasto.encoder import load_encoder

    return load_encoder(pooling="max", device=device, last=STYLE_LAYERS[-1])


def load_rgb(img: ImageLike) -> Image.Image:
    """An RGB PIL image from a path or an image (alpha dropped, greyscale expanded)."""
    if isinstance(img, Image.Image):
        return img if img.mode == "RGB" else img.convert("RGB")
    with Image.open(img) as im:
        return im.convert("RGB")


def area_matched_size(size: tuple[int, int], area: int) -> tuple[int, int]:
    """(width, height) with ``size``'s aspect ratio and about ``area`` pixels."""
    w, h = size
    scale = math.sqrt(area / (w * h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _resized(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    return img if img.size == size else img.resize(size, Image.LANCZOS)


def _to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``F F^T / M`` of (1, C, h, w) features, ``M = h w`` (Gatys et al. eq. 3)."""
    _, c, h, w = features.shape
    f = features.reshape(c, h * w)
    return (f @ f.T) / (h * w)


def relative_error(x: torch.Tensor, target: torch.Tensor) -> float:
    """``||x - target||^2 / ||target||^2``, summed in float64."""
    x, target = x.double(), target.double()
    denom = float(target.pow(2).sum())
    if denom == 0.0:
        return 0.0 if bool(torch.equal(x, target)) else math.inf
    return float((x - target).pow(2).sum()) / denom


class PairScorer:
    """Scores many images (e.g. one run's snapshots) against one (content, style) pair.

    The content and style targets are computed once per output size and cached.

    Args:
        content, style: the pair's images (paths or PIL images).
        encoder: ``enc(x, layers=...)`` as :func:`impasto.encoder.load_encoder` returns;
            :func:`default_encoder` when None.
        device: where the default encoder runs (``"cpu"``, or ``"cuda"`` on a GPU machine;
            the numbers agree to fp32 rounding).
    """

    def __init__(
        self,
        content: ImageLike,
        style: ImageLike,
        *,
        encoder: Encoder | None = None,
        device: str = "cpu",
    ):
        self.content = load_rgb(content)
        self.style = load_rgb(style)
        self._encoder = encoder
        self.device = device
        self._targets: dict[tuple[int, int], tuple[torch.Tensor, list[torch.Tensor]]] = {}

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = default_encoder(self.device)
        return self._encoder

    def _features(self, img: Image.Image, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            feats = self.encoder(_to_tensor(img).to(self.device), layers=tuple(layers))
        return {name: feats[name].float() for name in layers}

    def targets(self, size: tuple[int, int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(content features at relu4_2, style Grams) for an output of ``size`` = (w, h)."""
        if size not in self._targets:
            content = _resized(self.content, size)
            style = _resized(self.style, area_matched_size(self.style.size, size[0] * size[1]))
            c = self._features(content, (CONTENT_LAYER,))[CONTENT_LAYER]
            s = self._features(style, STYLE_LAYERS)
            self._targets[size] = (c, [gram(s[name]) for name in STYLE_LAYERS])
        return self._targets[size]

    def score(self, output: ImageLike) -> dict[str, float]:
        """``{"content": relative content error, "style": mean relative Gram error}``."""
        img = load_rgb(output)
        if min(img.size) < _MIN_SIDE:
            raise ValueError(f"image {img.size} too small to score (min side {_MIN_SIDE})")
        content_target, style_targets = self.targets(img.size)
        feats = self._features(img, (CONTENT_LAYER, *STYLE_LAYERS))
        content = relative_error(feats[CONTENT_LAYER], content_target)
        style = [
            relative_error(gram(feats[name]), target)
            for name, target in zip(STYLE_LAYERS, style_targets, strict=True)
        ]
        return {"content": content, "style": sum(style) / len(style)}


def evaluate(
    output: ImageLike, content: ImageLike, style: ImageLike, *, encoder: Encoder | None = None
) -> dict[str, float]:
    """Score one image: ``{"content": ..., "style": ...}`` (see the module docstring)."""
    return PairScorer(content, style, encoder=encoder).score(output)
