"""How the loss terms are balanced (``Settings.loss_scale``): pure functions on one scale's targets.

``"paper"`` keeps Gatys et al.'s raw eqs. (1)-(7): ``alpha * L_content + beta * L_style`` with
``L_content = 1/2 sum (F - P)^2`` and ``E_l = 1/(4 N_l^2 M_l^2) sum (G - A)^2``. Their sizes
follow each image's feature magnitudes: the content term grows with the photo's activations
(and with the pixel count), the style term with the painting's Gram entries, so a given
alpha/beta paints one pair strongly and barely touches another.

``"normalized"`` divides each term by its target's magnitude, so the objective becomes

    alpha * sum_l c_l ||F_l - P_l||^2 / ||P_l||^2  +  beta * sum_l w_l ||G_l - A_l||^2 / ||A_l||^2

(with ``G``, ``A`` the position-normalised Gram matrices ``F F^T / M``): relative errors, the same
units as ``benchmarks/evaluator.py`` reports, free of the images' feature scale and (to first
order) of the output size. ``beta / alpha`` is then a *style strength* with one meaning on every
pair and at every size; the coarse-to-fine pyramid needs no per-level correction of alpha.

The functions here only compute the effective per-layer weights; :class:`impasto.objective.
Objective` applies them to the raw losses unchanged, so the paper's equations stay the code path
in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from .choices import LOSS_SCALES

if TYPE_CHECKING:  # only a type: balance must stay importable from objective's callers
    from .objective import Targets

__all__ = [
    "LOSS_SCALES",
    "content_factor",
    "style_factor",
    "layer_weights",
    "content_area_factor",
    "tv_factor",
]

_TINY = 1e-30


def _sq_norm(t: torch.Tensor) -> float:
    return float(t.detach().double().pow(2).sum())


def content_factor(target: torch.Tensor) -> float:
    """``2 / ||P||^2``: turns eq. (1), ``1/2 ||F - P||^2``, into ``||F - P||^2 / ||P||^2``.

    Args:
        target: the photo's features ``P`` at one content layer, ``(1, N, H, W)``.

    Returns:
        The factor (1.0 when ``P`` is all zeros, where no relative error exists).
    """
    norm = _sq_norm(target)
    return 2.0 / norm if norm > _TINY else 1.0


def style_factor(gram: torch.Tensor) -> float:
    """``4 N^2 / ||A||^2``: turns eq. (4) into the relative Gram error.

    With ``A`` the position-normalised target (``A_paper / M``, as :class:`Targets` stores it),
    eq. (4) is ``1/(4 N^2 M^2) ||M G' - M A||^2 = ||G' - A||^2 / (4 N^2)`` (``G' = G / M``), so
    multiplying by ``4 N^2 / ||A||^2`` gives ``||G' - A||^2 / ||A||^2`` whatever M is.

    Args:
        gram: the position-normalised Gram target ``A`` at one layer, ``(1, N, N)``.
    """
    n = gram.shape[-1]
    norm = _sq_norm(gram)
    return 4.0 * n * n / norm if norm > _TINY else 1.0


def _style_target_factor(targets: Targets, layer: str) -> float:
    """The style factor of one layer: its whole-image target's, else the mean of the regions'
    targets' factors weighted by their guides' mass at that layer."""
    if layer in targets.grams:
        return style_factor(targets.grams[layer])
    found = [
        (r.mass.get(layer, 0.0), style_factor(r.grams[layer]))
        for r in targets.regions
        if layer in r.grams
    ]
    mass = sum(m for m, _ in found)
    if not found:
        return 1.0
    if mass <= 0:
        return sum(f for _, f in found) / len(found)
    return sum(m * f for m, f in found) / mass


def layer_weights(
    targets: Targets,
    loss_scale: str,
    content_layer_weights: Mapping[str, float],
    style_layer_weights: Mapping[str, float],
) -> tuple[dict[str, float], dict[str, float]]:
    """The per-layer weights to give :class:`impasto.objective.Objective` at one scale.

    Args:
        targets: this scale's targets (content features, position-normalised Gram targets).
        loss_scale: ``"paper"`` (weights returned unchanged: eqs. (1)-(7) exactly) or
            ``"normalized"`` (each layer's weight times :func:`content_factor` or
            :func:`style_factor` of its target).
        content_layer_weights: ``{layer: weight}`` of the content layers (summing to 1).
        style_layer_weights: ``{layer: w_l}`` of eq. (5).

    Returns:
        ``(content_layer_weights, style_layer_weights)``; layers without a target keep their
        weight (the objective ignores them).
    """
    if loss_scale not in LOSS_SCALES:
        raise ValueError(f"loss scale must be one of {', '.join(LOSS_SCALES)}, got {loss_scale!r}")
    content = dict(content_layer_weights)
    style = dict(style_layer_weights)
    if loss_scale == "paper":
        return content, style
    for layer, w in content.items():
        if layer in targets.content:
            content[layer] = w * content_factor(targets.content[layer])
    have = targets.style_layers()
    for layer, w in style.items():
        if layer in have:
            style[layer] = w * _style_target_factor(targets, layer)
    return content, style


def content_area_factor(
    loss_scale: str, final_size: tuple[int, int], size: tuple[int, int]
) -> float:
    """The factor on alpha at one pyramid level of ``size`` when the output is ``final_size``.

    ``"paper"``: ``final area / level area``. Eq. (1) sums over positions, so it grows with the
    pixel count while eq. (4) does not; this keeps the final size's alpha/beta balance at every
    coarser level. ``"normalized"``: 1, since relative errors do not grow with the pixel count.
    """
    if loss_scale == "normalized":
        return 1.0
    return (final_size[0] * final_size[1]) / (size[0] * size[1])


def tv_factor(loss_scale: str, size: tuple[int, int], channels: int = 3) -> float:
    """The factor on the total-variation weight at one scale of ``size`` = (w, h).

    ``"paper"``: 1 (the raw sum of squared neighbour differences). ``"normalized"``: one over
    the number of pixel values, so the TV term is a mean that, like the relative errors, does
    not grow with the output size.
    """
    if loss_scale == "normalized":
        return 1.0 / (channels * size[0] * size[1])
    return 1.0
