"""The objective of one scale: targets computed once, then ``image -> (total, components)``.

Targets (the photo's features ``P`` and the paintings' Gram matrices ``A``) are computed under
``torch.no_grad`` once per scale. The objective composes the pure losses of :mod:`impasto.losses`
with the weights of eqs. (5) and (7).

Style targets are stored as Gram matrices divided by their number of positions M_s, and multiplied
by the generated image's M at use. When the painting and the image have the same number of
positions this is exactly the paper's ``A``; otherwise it is what keeps eq. (4) meaningful
(the paper assumes equal sizes). Several paintings are blended by interpolating these targets
with normalised weights.

Two controls of Gatys et al. 2017 ("Controlling Perceptual Factors in Neural Style Transfer") live
here too:

* Scale control (section 5): each painting may cover only some style layers (``style_layer_sets``),
  e.g. the low layers (fine texture) from one painting and the high layers (coarse structure) from
  another. Each layer's target interpolates the paintings that cover it, with their blend weights
  renormalised over those paintings.
* Spatial control (section 4): :class:`RegionInput` regions, each with a guide and its own
  paintings; their style loss uses guided Gram matrices (see :mod:`impasto.regions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from . import losses
from .encoder import VGG19Encoder

__all__ = [
    "Targets",
    "RegionInput",
    "RegionTarget",
    "compute_targets",
    "blended_grams",
    "style_grams",
    "Objective",
    "normalized_weights",
]


def normalized_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Weights summing to 1 (equal when ``weights`` is None)."""
    if n == 0:
        return []
    if weights is None:
        return [1.0 / n] * n
    total = float(sum(weights))
    return [w / total for w in weights] if total > 0 else [0.0] * n


@dataclass
class RegionInput:
    """One styled region of the image at one scale (input of :func:`compute_targets`).

    Attributes:
        guide: ``(1, 1, H, W)`` soft guide in [0, 1] at the image's size (already feathered).
        styles: the region's paintings, each resized for this scale.
        blend: blend weights of those paintings (normalised; default equal).
        layer_sets: per painting, the style layers it covers (None: all).
        weight: multiplies the region's style loss.
    """

    guide: torch.Tensor
    styles: Sequence[torch.Tensor]
    blend: Sequence[float] | None = None
    layer_sets: Sequence[Sequence[str] | None] | None = None
    weight: float = 1.0


@dataclass
class RegionTarget:
    """What one region must match at one scale.

    Attributes:
        guides: ``{layer: (1, 1, h_l, w_l)}`` the guide at each style layer's resolution.
        grams: ``{layer: A / M_s}`` the region's blended, position-normalised Gram targets.
        mass: ``{layer: sum_k T_k^2}``, the guided Gram's number of positions.
        weight: multiplies the region's style loss.
    """

    guides: dict[str, torch.Tensor]
    grams: dict[str, torch.Tensor]
    mass: dict[str, float]
    weight: float = 1.0


@dataclass
class Targets:
    """What the image must match at one scale.

    Attributes:
        content: ``{layer: P}`` features of the content image (may be empty).
        grams: ``{layer: A / M_s}`` blended, position-normalised Gram targets of the whole image
            (may be empty, e.g. when every painting belongs to a region).
        regions: guided style targets of regions (spatial control; may be empty).
    """

    content: dict[str, torch.Tensor]
    grams: dict[str, torch.Tensor]
    regions: list[RegionTarget] = field(default_factory=list)

    def style_layers(self) -> set[str]:
        """Layers that have a style target, globally or in some region."""
        out = set(self.grams)
        for r in self.regions:
            out.update(r.grams)
        return out


@torch.no_grad()
def style_grams(
    encoder: VGG19Encoder, image: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Position-normalised Gram matrices ``G / M`` of ``image`` at ``layers`` (float32)."""
    feats = encoder(image, layers)
    return {name: losses.gram_matrix(f, normalize=True) for name, f in feats.items()}


@torch.no_grad()
def blended_grams(
    encoder: VGG19Encoder,
    styles: Sequence[torch.Tensor],
    layers: Sequence[str],
    blend: Sequence[float] | None = None,
    layer_sets: Sequence[Sequence[str] | None] | None = None,
) -> dict[str, torch.Tensor]:
    """Interpolated position-normalised Gram targets of several paintings.

    ``A_l = sum_s w_s A_s,l / sum_s w_s`` over the paintings ``s`` that cover layer ``l`` (all of
    them unless ``layer_sets`` says otherwise: Gatys et al. 2017, section 5, scale control).
    A layer covered by no painting gets no target.

    Args:
        encoder: the VGG19 encoder.
        styles: the paintings, each resized for this scale.
        layers: the style layers wanted.
        blend: blend weight per painting (default equal).
        layer_sets: per painting, the layers it covers (None or a None entry: all of ``layers``).
    """
    n = len(styles)
    raw = list(blend) if blend is not None else [1.0] * n
    sets = list(layer_sets) if layer_sets is not None else [None] * n
    if len(raw) != n or len(sets) != n:
        raise ValueError("blend and layer_sets need one entry per style image")
    covered = [[lay for lay in layers if s is None or lay in s] for s in sets]
    per_style = [
        style_grams(encoder, style, cov) if cov else {} for style, cov in zip(styles, covered)
    ]
    grams: dict[str, torch.Tensor] = {}
    for layer in layers:
        users = [i for i in range(n) if layer in per_style[i]]
        weights = normalized_weights([raw[i] for i in users], len(users))
        for i, w in zip(users, weights):
            g = w * per_style[i][layer]
            grams[layer] = grams[layer] + g if layer in grams else g
    return grams


@torch.no_grad()
def compute_targets(
    encoder: VGG19Encoder,
    content: torch.Tensor | None,
    content_layers: Sequence[str],
    styles: Sequence[torch.Tensor],
    style_layers: Sequence[str],
    style_blend: Sequence[float] | None = None,
    *,
    style_layer_sets: Sequence[Sequence[str] | None] | None = None,
    regions: Sequence[RegionInput] = (),
    propagation: str = "area",
) -> Targets:
    """Compute the content features and blended style Grams for one scale.

    Args:
        encoder: the VGG19 encoder.
        content: ``(1, 3, H, W)`` content image at this scale's size, or None (texture synthesis).
        content_layers: layers for the content loss.
        styles: style images for the whole image, each already resized for this scale.
        style_layers: layers for the style loss.
        style_blend: blend weights per style (normalised here).
        style_layer_sets: per style, the style layers it covers (None: all); see
            :func:`blended_grams`.
        regions: styled regions (spatial control), with guides at the content's size.
        propagation: how guides reach each layer: ``"area"`` or ``"inside"``
            (:func:`impasto.regions.propagate_guide`).
    """
    from .regions import propagate_guide

    content_t: dict[str, torch.Tensor] = {}
    if content is not None and content_layers:
        content_t = {k: v.clone() for k, v in encoder(content, content_layers).items()}
    grams: dict[str, torch.Tensor] = {}
    if styles and style_layers:
        grams = blended_grams(encoder, styles, style_layers, style_blend, style_layer_sets)
    region_t: list[RegionTarget] = []
    if style_layers:
        for r in regions:
            if not r.styles:
                continue
            guides = propagate_guide(r.guide, style_layers, propagation)
            region_t.append(
                RegionTarget(
                    guides=guides,
                    grams=blended_grams(encoder, r.styles, style_layers, r.blend, r.layer_sets),
                    mass={k: float(g.float().pow(2).sum()) for k, g in guides.items()},
                    weight=r.weight,
                )
            )
    return Targets(content_t, grams, region_t)


class Objective:
    """``image -> (total loss, {"content": ..., "style": ..., "tv": ...})`` for one scale.

    The style term of layer ``l`` is ``w_l E_l`` for the whole-image target (if any) plus, for
    every region ``r`` with a target at ``l``, ``w_l lambda_r (mass_r,l / M_l) E_r,l`` where
    ``E_r,l`` is eq. (4) with the guided Gram normalised by the guide's mass (Gatys et al. 2017).

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
        have = targets.style_layers()
        self.style_layer_weights = {k: w for k, w in style_layer_weights.items() if w and k in have}
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
            if layer in self.targets.grams:
                style = style + w * losses.style_layer_loss(f, self.targets.grams[layer] * m)
            for r in self.targets.regions:
                a = r.grams.get(layer)
                mass = r.mass.get(layer, 0.0)
                if a is None or mass < 1.0:  # no target, or (almost) no position in the region
                    continue
                # Guided Gram normalised by the guide's mass, weighted by the region's share of
                # the positions: a region covering everything gives the unguided loss exactly.
                e = losses.style_layer_loss(f, a * mass, r.guides[layer], mass)
                style = style + (w * r.weight * mass / m) * e
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
