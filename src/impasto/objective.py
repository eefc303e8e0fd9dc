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
from .layers import layer_stride

__all__ = [
    "Targets",
    "RegionInput",
    "RegionTarget",
    "compute_targets",
    "blended_grams",
    "style_grams",
    "Objective",
    "Window",
    "MIN_MASS",
    "guide_mass",
    "layer_positions",
    "normalized_weights",
    "rgb",
]


def normalized_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Weights summing to 1 (equal when ``weights`` is None)."""
    if n == 0:
        return []
    if weights is None:
        return [1.0 / n] * n
    total = float(sum(weights))
    if total == float("inf"):  # 1e308 + 1e308: every weight was 0; scale them down first
        top = max(weights)
        weights = [w / top for w in weights]
        total = float(sum(weights))
    return [w / total for w in weights] if total > 0 else [0.0] * n


MIN_MASS = 1.0
"""A region's guide mass (``sum T_k^2``) at a layer below which it has no term there: (almost)
no position of the layer is in the region."""


def guide_mass(guide: torch.Tensor) -> float:
    """``sum_k T_k^2`` of a guide at one layer: the guided Gram's number of positions."""
    return float(guide.float().pow(2).sum())


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
    """Position-normalised Gram matrices ``G / M`` of ``image`` at ``layers`` (float32).

    An encoder with a ``grams`` method (:class:`impasto.tiles.TiledEncoder`, for images too large
    for one forward pass) computes them itself."""
    if hasattr(encoder, "grams"):
        return encoder.grams(image, layers)
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
            (:func:`impasto.guides.propagate_guide`).
    """
    from .guides import propagate_guide

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
                    mass={k: guide_mass(g) for k, g in guides.items()},
                    weight=r.weight,
                )
            )
    return Targets(content_t, grams, region_t)


@dataclass(frozen=True)
class Window:
    """The positions one tile owns, and where the crop fed to the network starts.

    A tile of the image owns the pixels ``[top, bottom) x [left, right)`` and is evaluated on a
    larger crop (its halo) whose top-left corner is ``origin``. At a layer of stride ``s`` it owns
    the feature positions ``[top // s, bottom // s) x [left // s, right // s)``; ``top``, ``left``
    and ``origin`` must be multiples of the deepest layer's stride (see :mod:`impasto.tiles`),
    so that the tiles' positions partition every layer's positions.
    """

    top: int
    left: int
    bottom: int
    right: int
    origin: tuple[int, int] = (0, 0)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The owned pixels in the crop's coordinates, ``(top, left, bottom, right)``."""
        y, x = self.origin
        return self.top - y, self.left - x, self.bottom - y, self.right - x

    def owned(self, stride: int) -> tuple[slice, slice]:
        """The owned positions of a layer of ``stride``, in the whole image's features."""
        s = stride
        return slice(self.top // s, self.bottom // s), slice(self.left // s, self.right // s)

    def local(self, stride: int) -> tuple[slice, slice]:
        """The owned positions of a layer of ``stride``, in the crop's features."""
        rows, cols = self.owned(stride)
        y, x = self.origin[0] // stride, self.origin[1] // stride
        return slice(rows.start - y, rows.stop - y), slice(cols.start - x, cols.stop - x)


GramKey = tuple[int | None, str]  # (region index or None for the whole image, layer)


def _own(t: torch.Tensor, where: tuple[slice, slice] | None) -> torch.Tensor:
    return t if where is None else t[..., where[0], where[1]]


def layer_positions(size: tuple[int, int], layers: Sequence[str]) -> dict[str, int]:
    """``{layer: M_l}``, the number of positions of each layer for an image of ``(h, w)`` px."""
    h, w = size
    return {lay: (h // layer_stride(lay)) * (w // layer_stride(lay)) for lay in layers}


class Objective:
    """``image -> (total loss, {"content": ..., "style": ..., "tv": ...})`` for one scale.

    The style term of layer ``l`` is ``w_l E_l`` for the whole-image target (if any) plus, for
    every region ``r`` with a target at ``l``, ``w_l lambda_r (mass_r,l / M_l) E_r,l`` where
    ``E_r,l`` is eq. (4) with the guided Gram normalised by the guide's mass (Gatys et al. 2017).

    The evaluation is split in pieces (:meth:`grams`, :meth:`content`, :meth:`style`,
    :meth:`tv`, :meth:`combine`) that accept a :class:`Window`, so that
    :class:`impasto.tiles.TiledObjective` computes exactly the same loss tile by tile.
    A 1-channel image (luminance mode) is expanded to three equal channels.

    Args:
        encoder: the VGG19 encoder (its dtype is the network's arithmetic).
        targets: from :func:`compute_targets`.
        content_weight: alpha of eq. (7).
        style_weight: beta of eq. (7).
        content_layer_weights: ``{layer: weight}`` for the content layers.
        style_layer_weights: ``{layer: w_l}`` of eq. (5).
        tv_weight: weight of the total-variation term.
    """

    #: The caller backpropagates the total (:func:`impasto.optimise.optimise` reads this).
    computes_gradient = False

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
        image = rgb(image)
        feats = self.encoder(image, self.layers)
        style = self.style(self.grams(feats), layer_positions(image.shape[-2:], self.layers))
        return self.combine(self.content(feats), style, self.tv(image))

    def grams(
        self, feats: dict[str, torch.Tensor], window: Window | None = None
    ) -> dict[GramKey, torch.Tensor]:
        """The raw (guided) Gram matrices the style loss needs, over the positions ``window``
        owns (all of them when None): ``{(None, layer): G}`` for the whole-image target and
        ``{(r, layer): G_r}`` for region ``r``."""
        out: dict[GramKey, torch.Tensor] = {}
        for layer in self.style_layer_weights:
            s = layer_stride(layer)
            f = _own(feats[layer], window and window.local(s))
            if layer in self.targets.grams:
                out[None, layer] = losses.gram_matrix(f)
            for i, r in enumerate(self.targets.regions):
                # No target, or (almost) no position in the region: no term.
                if layer in r.grams and r.mass.get(layer, 0.0) >= MIN_MASS:
                    guide = _own(r.guides[layer], window and window.owned(s))
                    out[i, layer] = losses.gram_matrix(f, guide)
        return out

    def style(
        self, grams: dict[GramKey, torch.Tensor], positions: dict[str, int]
    ) -> torch.Tensor | None:
        """``L_style`` (eq. (5), before beta) from the whole image's Gram matrices.

        Targets are position-normalised, so they are multiplied by ``M_l`` (or a region's
        mass); a region's term is weighted by its share of the positions, so a region covering
        everything gives the unguided loss exactly.
        """
        w = self.style_layer_weights
        t = self.targets
        terms = [
            losses.style_loss(
                {lay: g for (r, lay), g in grams.items() if r is None},
                {lay: a * positions[lay] for lay, a in t.grams.items() if lay in w},
                w,
                positions,
            )
        ]
        for i, reg in enumerate(t.regions):
            mine = {lay: g for (r, lay), g in grams.items() if r == i}
            terms.append(
                losses.style_loss(
                    mine,
                    {lay: reg.grams[lay] * reg.mass[lay] for lay in mine},
                    {lay: w[lay] * reg.weight * reg.mass[lay] / positions[lay] for lay in mine},
                    reg.mass,
                )
            )
        terms = [x for x in terms if x is not None]
        return sum(terms[1:], terms[0]) if terms else None

    def content(
        self, feats: dict[str, torch.Tensor], window: Window | None = None
    ) -> torch.Tensor | None:
        """``L_content`` (eq. (1), before alpha) over the positions ``window`` owns."""
        total = None
        for layer, w in self.content_layer_weights.items():
            s = layer_stride(layer)
            f = _own(feats[layer], window and window.local(s))
            p = _own(self.targets.content[layer], window and window.owned(s))
            e = w * losses.content_loss(f, p)
            total = e if total is None else total + e
        return total

    def tv(self, image: torch.Tensor, window: Window | None = None) -> torch.Tensor | None:
        """The weighted TV term over the pixel pairs ``window`` owns (None when off)."""
        if not self.tv_weight:
            return None
        return self.tv_weight * losses.tv_loss(image, window and window.box)

    def combine(
        self, content: torch.Tensor | None, style: torch.Tensor | None, tv: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. (7): ``(alpha L_content + beta L_style + TV, parts)``; absent terms are left out
        of ``parts``."""
        parts: dict[str, torch.Tensor] = {}
        like = next(x for x in (content, style, tv, torch.zeros(())) if x is not None)
        zero = like.new_zeros(())
        if content is not None and self.content_layer_weights:
            parts["content"] = self.alpha * content
        if style is not None and self.style_layer_weights:
            parts["style"] = self.beta * style
        extra = []
        if tv is not None:
            parts["tv"] = tv
            extra.append((1.0, tv))
        content = zero if content is None else content
        style = zero if style is None else style
        return losses.total_loss(content, style, self.alpha, self.beta, *extra), parts


def rgb(image: torch.Tensor) -> torch.Tensor:
    """A 1-channel (luminance) image as three equal channels; 3-channel images unchanged."""
    return image.expand(-1, 3, -1, -1) if image.shape[1] == 1 else image
