"""The objective of one scale: targets computed once, then ``image -> (total, components)``.

Targets (the photo's features ``P`` and the paintings' Gram matrices ``A``) are computed under
``torch.no_grad`` once per scale. The objective composes the pure losses of :mod:`impasto.losses`
with the weights of eqs. (5) and (7).

Style targets are stored as Gram matrices divided by their number of positions M_s, and multiplied
by the generated image's M at use. When the painting and the image have the same number of
positions this is exactly the paper's ``A``; otherwise it is what keeps eq. (4) meaningful
(the paper assumes equal sizes). Several paintings are blended by interpolating these targets
with normalised weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import losses
from .encoder import VGG19Encoder

__all__ = ["Targets", "compute_targets", "Objective", "normalized_weights"]


def normalized_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Weights summing to 1 (equal when ``weights`` is None)."""
    if n == 0:
        return []
    if weights is None:
        return [1.0 / n] * n
    total = float(sum(weights))
    return [w / total for w in weights] if total > 0 else [0.0] * n


@dataclass
class Targets:
    """What the image must match at one scale.

    Attributes:
        content: ``{layer: P}`` features of the content image (may be empty).
        grams: ``{layer: A / M_s}`` blended, position-normalised Gram targets (may be empty).
    """

    content: dict[str, torch.Tensor]
    grams: dict[str, torch.Tensor]


@torch.no_grad()
def style_grams(
    encoder: VGG19Encoder, image: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Position-normalised Gram matrices ``G / M`` of ``image`` at ``layers`` (float32)."""
    feats = encoder(image, layers)
    return {name: losses.gram_matrix(f, normalize=True) for name, f in feats.items()}


@torch.no_grad()
def compute_targets(
    encoder: VGG19Encoder,
    content: torch.Tensor | None,
    content_layers: Sequence[str],
    styles: Sequence[torch.Tensor],
    style_layers: Sequence[str],
    style_blend: Sequence[float] | None = None,
) -> Targets:
    """Compute the content features and blended style Grams for one scale.

    Args:
        encoder: the VGG19 encoder.
        content: ``(1, 3, H, W)`` content image at this scale's size, or None (texture synthesis).
        content_layers: layers for the content loss.
        styles: style images, each already resized for this scale.
        style_layers: layers for the style loss.
        style_blend: blend weights per style (normalised here).
    """
    content_t: dict[str, torch.Tensor] = {}
    if content is not None and content_layers:
        content_t = {k: v.clone() for k, v in encoder(content, content_layers).items()}
    grams: dict[str, torch.Tensor] = {}
    if styles and style_layers:
        for w, style in zip(normalized_weights(style_blend, len(styles)), styles):
            for name, g in style_grams(encoder, style, style_layers).items():
                grams[name] = grams[name] + w * g if name in grams else w * g
    return Targets(content_t, grams)


class Objective:
    """``image -> (total loss, {"content": ..., "style": ..., "tv": ...})`` for one scale.

    Args:
        encoder: the VGG19 encoder (its dtype is the network's arithmetic).
        targets: from :func:`compute_targets`.
        content_weight: alpha of eq. (7).
        style_weight: beta of eq. (7).
        content_layer_weights: ``{layer: weight}`` for the content layers.
        style_layer_weights: ``{layer: w_l}`` of eq. (5).
        tv_weight: weight of the total-variation term.
    """

    def __init__(
        self,
        encoder: VGG19Encoder,
        targets: Targets,
        content_weight: float,
        style_weight: float,
        content_layer_weights: dict[str, float],
        style_layer_weights: dict[str, float],
        tv_weight: float = 0.0,
    ) -> None:
        self.encoder = encoder
        self.targets = targets
        self.alpha = content_weight
        self.beta = style_weight
        self.content_layer_weights = {
            k: w for k, w in content_layer_weights.items() if w and k in targets.content
        }
        self.style_layer_weights = {
            k: w for k, w in style_layer_weights.items() if w and k in targets.grams
        }
        if self.alpha == 0:
            self.content_layer_weights = {}
        if self.beta == 0:
            self.style_layer_weights = {}
        self.tv_weight = tv_weight
        self.layers = tuple(dict.fromkeys([*self.content_layer_weights, *self.style_layer_weights]))

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = self.encoder(image, self.layers)
        parts: dict[str, torch.Tensor] = {}
        zero = image.new_zeros(())
        content = zero
        for layer, w in self.content_layer_weights.items():
            content = content + w * losses.content_loss(feats[layer], self.targets.content[layer])
        style = zero
        for layer, w in self.style_layer_weights.items():
            f = feats[layer]
            m = f.shape[-2] * f.shape[-1]
            style = style + w * losses.style_layer_loss(f, self.targets.grams[layer] * m)
        if self.content_layer_weights:
            parts["content"] = self.alpha * content
        if self.style_layer_weights:
            parts["style"] = self.beta * style
        extra = []
        if self.tv_weight:
            tv = self.tv_weight * losses.tv_loss(image)
            parts["tv"] = tv
            extra.append((1.0, tv))
        total = losses.total_loss(content, style, self.alpha, self.beta, *extra)
        return total, parts
