"""The losses of Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural Networks"
(CVPR 2016; arXiv:1508.06576 "A Neural Algorithm of Artistic Style"), as pure functions.

Notation: ``F`` are the features of the image being made at layer l, reshaped ``N_l x M_l``
(N_l channels, M_l = height x width positions); ``P`` the photo's, ``A`` the painting's Gram matrix.
Features may be bf16 (mixed precision); every reduction here runs in float32.

The gradients of eqs. (2) and (6) are not written by hand: autograd through the ReLU that produced
``F`` gives exactly "(...) where F_ij > 0, else 0". ``tests/test_losses.py`` checks that.

Departures from the paper, named where they happen:
* :func:`gram_matrix` can optionally divide by M_l (``normalize=True``) for numerically small
  targets; the paper's eq. (4) already divides by M_l^2, so the default is the paper's raw Gram.
* Batch dimension: everything accepts ``(B, C, H, W)`` and sums over the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = [
    "gram_matrix",
    "content_loss",
    "style_layer_loss",
    "style_loss",
    "tv_loss",
    "total_loss",
]


def _acc(x: torch.Tensor) -> torch.Tensor:
    """``x`` in an accumulation dtype: half precisions go to float32, float64 stays."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _flat(features: torch.Tensor) -> torch.Tensor:
    """``(B, N, H, W)`` -> ``(B, N, M)`` in the accumulation dtype."""
    b, n = features.shape[:2]
    return _acc(features.reshape(b, n, -1))


def gram_matrix(
    features: torch.Tensor, mask: torch.Tensor | None = None, normalize: bool = False
) -> torch.Tensor:
    """Gram matrix, eq. (3): ``G_ij = sum_k F_ik F_jk``.

    Args:
        features: ``(B, N, H, W)``.
        mask: optional ``(B or 1, 1, H, W)`` spatial guide; ``G = (F*m)(F*m)^T``, i.e. the guided
            Gram of Gatys et al. 2017 ("Controlling Perceptual Factors"), eq. (5) there.
        normalize: divide by M (the number of positions) (not in the 2016 paper).

    Returns:
        ``(B, N, N)`` float32.
    """
    f = features
    if mask is not None:
        f = f * mask.to(f.dtype)
    f = _flat(f)
    g = torch.bmm(f, f.transpose(1, 2))
    if normalize:
        g = g / f.shape[-1]
    return g


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Content loss, eq. (1): ``L_content = 1/2 sum_ij (F_ij - P_ij)^2``.

    Its gradient, eq. (2), is ``(F - P)_ij`` where ``F_ij > 0`` and 0 elsewhere (via the ReLU).
    """
    return 0.5 * (_acc(features) - _acc(target)).pow(2).sum()


def style_layer_loss(
    features: torch.Tensor,
    target_gram: torch.Tensor,
    mask: torch.Tensor | None = None,
    mass: float | None = None,
) -> torch.Tensor:
    """One layer's style loss, eq. (4): ``E_l = 1/(4 N_l^2 M_l^2) sum_ij (G_ij - A_ij)^2``.

    Its gradient, eq. (6), is ``1/(N_l^2 M_l^2) (F^T (G - A))_ji`` where ``F_ij > 0``, else 0.

    Args:
        features: ``F``, ``(B, N, H, W)``.
        target_gram: ``A``, ``(B or 1, N, N)``, the painting's Gram matrix at this layer (computed
            on an image of the same number of positions M, or rescaled to it by the caller).
        mask: optional spatial guide (guided Gram, Gatys et al. 2017); M_l is then the mask's mass.
        mass: the mask's mass ``sum(mask^2)`` per image when the caller already knows it (it is
            constant over an optimisation, so the loop need not reduce the mask every step).
    """
    n = features.shape[1]
    m = features.shape[-2] * features.shape[-1]
    if mask is not None:
        # Under a guide, the Gram sums over the guided positions only (mask weights squared).
        if mass is None:
            mass = float(mask.float().pow(2).sum()) / mask.shape[0] if mask.numel() else 0.0
        m = max(mass, 1.0)
    g = gram_matrix(features, mask)
    return (g - _acc(target_gram)).pow(2).sum() / (4.0 * n * n * m * m)


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
) -> torch.Tensor:
    """Total style loss, eq. (5): ``L_style = sum_l w_l E_l``."""
    total = None
    for layer, w in layer_weights.items():
        if w == 0:
            continue
        e = w * style_layer_loss(features[layer], target_grams[layer])
        total = e if total is None else total + e
    if total is None:
        return torch.zeros((), device=next(iter(features.values())).device)
    return total


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation (squared differences of neighbouring pixels), summed.

    Not in Gatys et al. 2016; a common smoothness prior (Mahendran & Vedaldi 2015), off by default.
    """
    x = _acc(image)
    dh = x[..., 1:, :] - x[..., :-1, :]
    dw = x[..., :, 1:] - x[..., :, :-1]
    return dh.pow(2).sum() + dw.pow(2).sum()


def total_loss(
    content: torch.Tensor, style: torch.Tensor, alpha: float, beta: float, *extra: Sequence
) -> torch.Tensor:
    """Total loss, eq. (7): ``L_total = alpha L_content + beta L_style`` (+ weighted extras,
    given as ``(weight, loss)`` pairs)."""
    total = alpha * content + beta * style
    for weight, loss in extra:
        total = total + weight * loss
    return total
