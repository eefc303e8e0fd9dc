"""Exact tiled evaluation of an objective's value and gradient, for images too large to
backpropagate through the network in one piece.

A Gram matrix is a sum over positions, ``G_l = sum_k F_k F_k^T``, so it can be built tile by
tile; the content loss and the TV term are sums over positions too. Two passes over the tiles:

1. No gradients: each tile, with a halo around it, runs up to the deepest layer used; the Gram
   matrices of the positions it owns (halo cropped at each layer's resolution, region guides
   cropped alike) are added into the whole image's ``G_l``; its content and TV terms into the
   totals. The style loss follows from the whole ``G_l``, and autograd on it gives
   ``D_l = dL/dG_l``.
2. Per tile, forward with gradients and backpropagate ``sum_l <D_l, F_own F_own^T>`` plus the
   tile's own content and TV terms; the input gradient (halo included) is added into the
   image's gradient.

This is exact, not an approximation, provided a tile's owned features are the same as in the
whole image: tile origins and halos must be multiples of the deepest layer's stride (so that
every pooling cuts the crop where it cuts the image) and the halo must cover the receptive
field's reach (:func:`receptive_radius`: 70 px for ``relu5_1``, so an 80 px halo). The
exactness test (``tests/test_tiles.py``) compares value and gradient with the untiled ones.
The cost is one extra no-gradient forward pass plus the halos.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from . import losses
from .errors import SettingsError
from .layers import LAYER_NAMES, deepest, layer_stride
from .objective import GramKey, Objective, Window, layer_positions, rgb

__all__ = [
    "TiledEncoder",
    "TiledObjective",
    "alignment",
    "receptive_radius",
    "required_halo",
    "tile_windows",
]

TileReport = Callable[[int, int, int], None]


def receptive_radius(last: str, names: Sequence[str] = LAYER_NAMES) -> int:
    """How far (px, each side) beyond its own stride cell a feature of ``last`` sees.

    Each 3x3 convolution (padding 1) at stride ``s`` widens the field by ``s`` px each side;
    2x2 pooling only changes the stride. ``names`` is the network's layer order (VGG19 by
    default; shallower VGGs have fewer convolutions per block).
    """
    names = list(names)
    upto = names[: names.index(last) + 1]
    return sum(layer_stride(n) for n in upto if n.startswith("conv"))


def alignment(layers: Sequence[str]) -> int:
    """The stride of the deepest of ``layers`` (1 when none): tile origins, tile sizes and
    halos must be multiples of it."""
    last = deepest(layers)
    return layer_stride(last) if last is not None else 1


def required_halo(layers: Sequence[str], names: Sequence[str] = LAYER_NAMES) -> int:
    """The smallest exact halo for ``layers``: the receptive radius of the deepest, rounded up to
    a multiple of its stride (80 px for ``relu5_1``); 1 px without layers (the TV term)."""
    last = deepest(layers)
    if last is None:
        return 1
    a = alignment(layers)
    return a * math.ceil(receptive_radius(last, names) / a)


def _cuts(length: int, tile: int, align: int) -> list[int]:
    """Boundaries ``0 = b_0 < ... < b_n = length`` of near-equal pieces of at most ``tile`` px
    whose inner boundaries are multiples of ``align``."""
    n = math.ceil(length / tile)
    step = align * math.ceil(length / n / align)
    return [*range(0, length, step), length]


def tile_windows(size: tuple[int, int], tile: int, halo: int, align: int) -> list[Window]:
    """The tiles of an ``(h, w)`` image: owned boxes of at most ``tile`` px a side that
    partition it, each with its crop's origin ``halo`` px up and left (clipped to the image).

    Raises:
        SettingsError: ``tile`` or ``halo`` not a positive multiple of ``align``.
    """
    if tile < align or tile % align or halo % align or halo < 0:
        raise SettingsError(
            f"tile ({tile} px) and halo ({halo} px) must be multiples of {align} px "
            "(the deepest layer's stride)"
        )
    h, w = size
    rows, cols = _cuts(h, tile, align), _cuts(w, tile, align)
    return [
        Window(top, left, bottom, right, (max(0, top - halo), max(0, left - halo)))
        for top, bottom in zip(rows, rows[1:])
        for left, right in zip(cols, cols[1:])
    ]


def _crop(image: torch.Tensor, w: Window, halo: int) -> torch.Tensor:
    h, wd = image.shape[-2:]
    y, x = w.origin
    return image[..., y : min(h, w.bottom + halo), x : min(wd, w.right + halo)]


def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


class TiledObjective:
    """An :class:`~impasto.objective.Objective` evaluated tile by tile, exactly.

    Calling it returns ``(total, components)`` like the objective, and, when the image requires
    grad, sets ``image.grad`` to the gradient of ``total`` (it sets :attr:`computes_gradient`, so
    :func:`impasto.optimise.optimise` uses that gradient instead of backpropagating). An image
    that fits in one tile is evaluated whole.

    Args:
        objective: the objective of this scale.
        tile: owned tile side in px, a multiple of the deepest layer's stride.
        halo: context around each tile in px (default and minimum: :func:`required_halo`).
        on_tile: called with ``(pass, i, n)`` after tile ``i`` (1-based) of ``n`` of pass 1 or 2.
    """

    computes_gradient = True

    def __init__(
        self,
        objective: Objective,
        tile: int,
        halo: int | None = None,
        on_tile: TileReport | None = None,
    ) -> None:
        self.objective = objective
        self.align = alignment(objective.layers)
        names = getattr(objective.encoder, "names", LAYER_NAMES)
        need = required_halo(objective.layers, names)
        self.halo = need if halo is None else halo
        if self.halo < need:
            raise SettingsError(
                f"a halo of {self.halo} px is too small for exact tiles: the deepest layer "
                f"needs {need} px"
            )
        tile_windows((tile, tile), tile, self.halo, self.align)  # validates the sizes
        self.tile = tile
        self.on_tile = on_tile

    def windows(self, size: tuple[int, int]) -> list[Window]:
        """The tiles of an ``(h, w)`` image."""
        return tile_windows(size, self.tile, self.halo, self.align)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        obj = self.objective
        windows = self.windows(tuple(image.shape[-2:]))
        if len(windows) == 1:
            total, parts = obj(image)
            if image.requires_grad:
                (image.grad,) = torch.autograd.grad(total, image)
            return total.detach(), {k: v.detach() for k, v in parts.items()}
        grams, content, tv = self._pass1(image, windows)
        positions = layer_positions(tuple(image.shape[-2:]), obj.layers)
        style, dgrams = self._style(grams, positions, image.requires_grad)
        total, parts = obj.combine(content, style, tv)
        if image.requires_grad:
            image.grad = self._pass2(image, windows, dgrams)
        return total, parts

    @torch.no_grad()
    def _pass1(
        self, image: torch.Tensor, windows: list[Window]
    ) -> tuple[dict[GramKey, torch.Tensor], torch.Tensor | None, torch.Tensor | None]:
        """The whole image's Gram matrices, content and TV terms, summed over the tiles."""
        obj = self.objective
        grams: dict[GramKey, torch.Tensor] = {}
        content = tv = None
        for i, w in enumerate(windows, 1):
            crop = rgb(_crop(image.detach(), w, self.halo))
            feats = obj.encoder(crop, obj.layers)
            for k, g in obj.grams(feats, w).items():
                grams[k] = grams[k].add_(g) if k in grams else g
            content = _add(content, obj.content(feats, w))
            tv = _add(tv, obj.tv(crop, w))
            del feats
            if self.on_tile is not None:
                self.on_tile(1, i, len(windows))
        return grams, content, tv

    def _style(
        self, grams: dict[GramKey, torch.Tensor], positions: dict[str, int], need_grad: bool
    ) -> tuple[torch.Tensor | None, dict[GramKey, torch.Tensor]]:
        """``L_style`` from the whole Grams and, if wanted, ``beta dL_style/dG`` per Gram."""
        obj = self.objective
        if not grams:
            return None, {}
        keys = list(grams)
        leaves = [grams[k].detach().requires_grad_(need_grad) for k in keys]
        with torch.enable_grad():
            style = obj.style(dict(zip(keys, leaves)), positions)
            if style is None or not need_grad:
                return style, {}
            d = torch.autograd.grad(obj.beta * style, leaves)
        return style.detach(), dict(zip(keys, d))

    def _pass2(
        self, image: torch.Tensor, windows: list[Window], dgrams: dict[GramKey, torch.Tensor]
    ) -> torch.Tensor:
        """The gradient of the total, tile by tile (halo included)."""
        obj = self.objective
        grad = torch.zeros_like(image)
        for i, w in enumerate(windows, 1):
            t = _crop(image.detach(), w, self.halo).requires_grad_(True)
            with torch.enable_grad():
                crop = rgb(t)
                feats = obj.encoder(crop, obj.layers)
                outs, grads = self._feature_grads(feats, w, dgrams)
                tv = obj.tv(crop, w)
                if tv is not None:
                    outs.append(tv)
                    grads.append(torch.ones_like(tv))
                (g,) = torch.autograd.grad(outs, t, grads)
            y, x = w.origin
            grad[..., y : y + g.shape[-2], x : x + g.shape[-1]] += g
            del feats, outs, grads, g
            if self.on_tile is not None:
                self.on_tile(2, i, len(windows))
        return grad

    def _feature_grads(
        self,
        feats: dict[str, torch.Tensor],
        w: Window,
        dgrams: dict[GramKey, torch.Tensor],
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The total's gradient with respect to each feature map of a tile (zero outside the
        positions it owns): ``beta dL/dG`` through each Gram (:func:`losses.gram_backward`) and
        ``alpha w_l (F - P)`` for the content layers. Given directly, so that no graph of the
        Gram matrices is kept (it would cost a copy of every feature map)."""
        obj = self.objective
        grads: dict[str, torch.Tensor] = {}

        def add(layer: str, g: torch.Tensor) -> None:
            if layer not in grads:
                grads[layer] = torch.zeros(feats[layer].shape, dtype=g.dtype, device=g.device)
            rows, cols = w.local(layer_stride(layer))
            grads[layer][..., rows, cols] += g

        for (r, layer), d in dgrams.items():
            rows, cols = w.local(layer_stride(layer))
            f = feats[layer][..., rows, cols].detach()
            mask = None
            if r is not None:
                orows, ocols = w.owned(layer_stride(layer))
                mask = obj.targets.regions[r].guides[layer][..., orows, ocols]
            add(layer, losses.gram_backward(f, d, mask))
        for layer, weight in obj.content_layer_weights.items():
            s = layer_stride(layer)
            rows, cols = w.local(s)
            orows, ocols = w.owned(s)
            f = feats[layer][..., rows, cols].detach()
            p = obj.targets.content[layer][..., orows, ocols]
            add(layer, (obj.alpha * weight) * losses.content_backward(f, p))
        layers = list(grads)
        return [feats[k] for k in layers], [grads[k].to(feats[k].dtype) for k in layers]


class TiledEncoder:
    """An encoder evaluated tile by tile without gradients, for the targets of a tiled scale: the
    photo's features and the paintings' Gram matrices at sizes whose untiled forward pass would
    not fit (at 8192 px one ``relu1`` map alone is 17 GB in float32).

    Calling it returns the whole image's feature maps, assembled from each tile's own positions
    (meant for the content layers, which are small); :meth:`grams` returns the position-normalised
    Gram matrices as :func:`impasto.objective.style_grams` does, summed over the tiles without
    ever holding a whole feature map. Both are exact (same alignment and halo rules as
    :class:`TiledObjective`).

    Args:
        encoder: the network.
        tile: tile side in px (rounded down to the stride of the deepest layer asked for).
    """

    def __init__(self, encoder, tile: int) -> None:
        self.encoder = encoder
        self.tile = tile
        self.names = getattr(encoder, "names", LAYER_NAMES)

    def _windows(self, image: torch.Tensor, layers: Sequence[str]) -> tuple[list[Window], int]:
        align = alignment(layers)
        halo = required_halo(layers, self.names)
        tile = max(align, self.tile // align * align)
        return tile_windows(tuple(image.shape[-2:]), tile, halo, align), halo

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        windows, halo = self._windows(image, layers)
        if len(windows) == 1:
            return self.encoder(image, layers)
        h, w = image.shape[-2:]
        out: dict[str, torch.Tensor] = {}
        for win in windows:
            for layer, f in self.encoder(_crop(image, win, halo), layers).items():
                s = layer_stride(layer)
                if layer not in out:
                    out[layer] = f.new_empty((*f.shape[:2], h // s, w // s))
                rows, cols = win.owned(s)
                out[layer][..., rows, cols] = f[(..., *win.local(s))]
        return out

    @torch.no_grad()
    def grams(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """``{layer: G / M}`` of ``image`` (float32), summed tile by tile."""
        windows, halo = self._windows(image, layers)
        sums: dict[str, torch.Tensor] = {}
        for win in windows:
            for layer, f in self.encoder(_crop(image, win, halo), layers).items():
                g = losses.gram_matrix(f[(..., *win.local(layer_stride(layer)))])
                sums[layer] = sums[layer].add_(g) if layer in sums else g
        positions = layer_positions(tuple(image.shape[-2:]), list(sums))
        return {layer: g / positions[layer] for layer, g in sums.items()}
