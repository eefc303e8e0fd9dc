"""What this release replaced, for side-by-side benchmarks: the old code patched back in.

``autograd_grams()``: the Gram matrices' gradient as before the one-product change
(``impasto.losses._Gram``): the features copied to float32 once and multiplied, the gradient
left to autograd (two products, added), and the tiles' explicit gradient
(``losses.gram_backward``) as one float32 product. Used by ``speed.py --grams autograd``,
``levers_cpu.py --gram autograd`` and ``large.py`` under ``IMPASTO_BENCH_GRAMS=autograd``.
"""

from __future__ import annotations

import torch

from impasto import losses


def _gram_by_autograd(f: torch.Tensor) -> torch.Tensor:
    a = f if f.dtype in (torch.float32, torch.float64) else f.float()
    return torch.bmm(a, a.transpose(1, 2))


def _gram_backward_float32(features, grad_gram, mask=None):
    f = features if mask is None else features * mask.to(features.dtype)
    d = grad_gram.float()
    flat = f.reshape(*f.shape[:2], -1).float()
    g = torch.matmul(d + d.transpose(-1, -2), flat).reshape(f.shape)
    return g if mask is None else g * mask.to(g.dtype)


def autograd_grams() -> None:
    """Patch the old Gram gradients into :mod:`impasto.losses` (this process only)."""
    losses._Gram.apply = _gram_by_autograd
    losses.gram_backward = _gram_backward_float32
