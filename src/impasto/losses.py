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
    "content_backward",
    "gram_loss",
    "gram_backward",
    "style_layer_loss",
    "style_loss",
    "tv_loss",
    "total_loss",
]


def _acc(x: torch.Tensor) -> torch.Tensor:
    """``x`` in an accumulation dtype: half precisions go to float32, float64 stays."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _product_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of a Gram gradient's product for features in ``dtype``: their own, except
    float16, whose range could flush ``dL/dG``'s small entries to zero (float32 then)."""
    return torch.float32 if dtype == torch.float16 else dtype


class _Gram(torch.autograd.Function):
    """``F F^T`` for ``(B, N, M)`` features, summed in float32 (float64 stays), and
    differentiated as eq. (6) has it: ``(D + D^T) F``, one product in the features' own dtype
    (float16 excepted: :func:`_product_dtype`).

    Autograd through ``bmm(F, F^T)`` takes two products (one per operand, each as costly as the
    Gram itself) and adds them. With bf16 features (mixed precision) the product runs in bf16
    and its result is what the bf16 network's backward pass takes anyway; only the features
    themselves are kept for it (the network keeps them already), not a float32 copy."""

    @staticmethod
    def forward(ctx, f: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(f)
        a = _acc(f)
        return torch.bmm(a, a.transpose(1, 2))

    @staticmethod
    def backward(ctx, d: torch.Tensor) -> torch.Tensor:
        (f,) = ctx.saved_tensors
        dt = _product_dtype(f.dtype)
        return torch.bmm((d + d.transpose(1, 2)).to(dt), f.to(dt)).to(f.dtype)


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
    f = f.reshape(*f.shape[:2], -1)
    g = _Gram.apply(f)
    if normalize:
        g = g / f.shape[-1]
    return g


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Content loss, eq. (1): ``L_content = 1/2 sum_ij (F_ij - P_ij)^2``.

    Its gradient, eq. (2), is ``(F - P)_ij`` where ``F_ij > 0`` and 0 elsewhere (via the ReLU).
    """
    return 0.5 * (_acc(features) - _acc(target)).pow(2).sum()


def content_backward(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The gradient of eq. (1) with respect to ``F``: ``F - P`` (eq. (2) before the ReLU's
    mask, which backpropagation through the ReLU applies), in the accumulation dtype."""
    return _acc(features) - _acc(target)


def gram_backward(
    features: torch.Tensor, grad_gram: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The gradient with respect to ``F`` of ``<D, G>``, ``G`` the (guided) Gram of ``F``:
    ``(D + D^T) F``, or ``((D + D^T) (F m)) m`` under a mask ``m``.

    Backpropagating a loss through a Gram matrix this way needs no graph of the Gram: given
    ``D = dL/dG`` (computed once for a whole image), each tile's features get their gradient
    directly (:mod:`impasto.tiles`).

    Args:
        features: ``F``, ``(B, N, H, W)``.
        grad_gram: ``D``, ``(B or 1, N, N)``.
        mask: optional ``(B or 1, 1, H, W)`` spatial guide, as in :func:`gram_matrix`.

    Returns:
        ``(B, N, H, W)`` in the accumulation dtype; the product runs in the features' dtype
        (bf16 under mixed precision), as :func:`gram_matrix`'s gradient does.
    """
    f = features if mask is None else features * mask.to(features.dtype)
    d = _acc(grad_gram)
    dt = _product_dtype(f.dtype)
    flat = f.reshape(*f.shape[:2], -1).to(dt)
    g = _acc(torch.matmul((d + d.transpose(-1, -2)).to(dt), flat)).reshape(f.shape)
    return g if mask is None else g * mask.to(g.dtype)


def gram_loss(gram: torch.Tensor, target_gram: torch.Tensor, positions: float) -> torch.Tensor:
    """Eq. (4) given the Gram matrix: ``E_l = 1/(4 N_l^2 M_l^2) sum_ij (G_ij - A_ij)^2``.

    Args:
        gram: ``G``, ``(B, N, N)``.
        target_gram: ``A``, ``(B or 1, N, N)``.
        positions: ``M_l`` (under a spatial guide: the guide's mass ``sum(mask^2)``).
    """
    n = gram.shape[-1]
    return (_acc(gram) - _acc(target_gram)).pow(2).sum() / (4.0 * n * n * positions * positions)


def style_layer_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """One layer's style loss, eq. (4): ``E_l = 1/(4 N_l^2 M_l^2) sum_ij (G_ij - A_ij)^2``.

    Its gradient, eq. (6), is ``1/(N_l^2 M_l^2) (F^T (G - A))_ji`` where ``F_ij > 0``, else 0.

    Args:
        features: ``F``, ``(B, N, H, W)``.
        target_gram: ``A``, ``(B or 1, N, N)``, the painting's Gram matrix at this layer (computed
            on an image of the same number of positions M, or rescaled to it by the caller).

    Under a spatial guide (Gatys et al. 2017) :mod:`impasto.objective` takes
    :func:`gram_matrix` with the guide and the guide's mass as M_l (through :func:`style_loss`).
    """
    m = features.shape[-2] * features.shape[-1]
    return gram_loss(gram_matrix(features), target_gram, m)


def style_loss(
    grams: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
    positions: Mapping[str, float],
) -> torch.Tensor | None:
    """Total style loss, eq. (5): ``L_style = sum_l w_l E_l``, from the Gram matrices.

    Written on the Gram matrices ``G_l`` rather than the features because a Gram matrix is a sum
    over positions: callers may build it in one piece or tile by tile (:mod:`impasto.tiles`),
    and differentiate this with respect to it.

    Args:
        grams: ``{layer: G_l}``; layers missing here are skipped.
        target_grams: ``{layer: A_l}`` for every layer of ``grams`` that has a weight.
        layer_weights: ``{layer: w_l}``.
        positions: ``{layer: M_l}`` (or the guide's mass, for guided Grams).

    Returns:
        The weighted sum, or None when no layer contributes.
    """
    total = None
    for layer, w in layer_weights.items():
        if w == 0 or layer not in grams:
            continue
        e = w * gram_loss(grams[layer], target_grams[layer], positions[layer])
        total = e if total is None else total + e
    return total


def tv_loss(image: torch.Tensor, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """Total variation (squared differences of neighbouring pixels), summed.

    Not in Gatys et al. 2016; a common smoothness prior (Mahendran & Vedaldi 2015): on by
    default with the normalized loss scale (``settings.DEFAULT_TV_WEIGHT``), off with the
    paper's and in reconstructions.

    Args:
        image: ``(B, C, H, W)``.
        box: ``(top, left, bottom, right)``: count only the pairs whose first pixel (the upper or
            left one) lies in the box. The boxes of a partition of the image count every pair
            exactly once, so a tiled sum equals the whole image's (``image`` may be a crop that
            extends past the box; pairs reaching past its edge are not counted).
    """
    x = _acc(image)
    if box is None:
        top, left, bottom, right = 0, 0, x.shape[-2], x.shape[-1]
    else:
        top, left, bottom, right = box
    rows = x[..., top : bottom + 1, left:right]
    cols = x[..., top:bottom, left : right + 1]
    dh = rows[..., 1:, :] - rows[..., :-1, :]
    dw = cols[..., :, 1:] - cols[..., :, :-1]
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
