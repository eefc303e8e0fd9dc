"""Gradient descent on the pixels: the L-BFGS / Adam loop of one scale.

The loop owns no run state beyond its arguments: it takes a start image and an objective,
returns the optimised image, and reports each iteration to a callback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from .errors import Cancelled, SettingsError

__all__ = ["optimise", "OPTIMIZERS"]

OPTIMIZERS = ("lbfgs", "adam")

StepReport = Callable[[int, torch.Tensor, dict[str, torch.Tensor], torch.Tensor], None]


def _make_optimizer(
    name: str, x: torch.Tensor, lr: float, history_size: int
) -> torch.optim.Optimizer:
    if name == "lbfgs":
        # One function evaluation per iteration, as in Gatys et al. and neural-style.
        return torch.optim.LBFGS(
            [x],
            lr=lr,
            max_iter=1,
            history_size=history_size,
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
    if name == "adam":
        return torch.optim.Adam([x], lr=lr)
    raise SettingsError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def optimise(
    start: torch.Tensor,
    objective: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]],
    *,
    iterations: int,
    optimizer: str = "lbfgs",
    lr: float = 1.0,
    history_size: int = 100,
    on_step: StepReport | None = None,
    cancel: threading.Event | None = None,
) -> torch.Tensor:
    """Minimise ``objective`` over the pixels of ``start``.

    Args:
        start: ``(1, 3, H, W)`` float32 start image, RGB in [0, 1] (not modified).
        objective: ``image -> (total, components)``.
        iterations: number of iterations (one objective evaluation each).
        optimizer: ``"lbfgs"`` or ``"adam"``.
        lr: step size.
        history_size: L-BFGS memory.
        on_step: called after each iteration with ``(i, image, components, total)``
            (1-based ``i``; ``image`` is the live tensor: clone it to keep it).
        cancel: when set, the loop raises :class:`Cancelled` before the next iteration.

    Returns:
        The optimised image, clamped to [0, 1] (detached).

    Adam steps are followed by clamping to [0, 1]. L-BFGS iterates are left unclamped (clamping
    would corrupt its curvature pairs); the result is clamped at the end.
    """
    x = start.detach().clone().float().requires_grad_(True)
    opt = _make_optimizer(optimizer, x, lr, history_size)
    last: dict = {}
    good = x.detach().clone()  # the last point evaluated with a finite loss
    failures = 0
    norm: list[torch.Tensor] = []

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        total, parts = objective(x)
        if not norm:
            # Gatys' raw losses are ~1e10; torch's L-BFGS has absolute thresholds (curvature
            # pairs with y.s <= 1e-10 are dropped, after which it takes a raw gradient step of
            # ~1e8 pixels). Dividing by the first loss value (a constant) makes the objective
            # O(1); L-BFGS and Adam are otherwise invariant to such scaling.
            norm.append(1.0 / total.detach().abs().clamp_min(1e-30))
        (total * norm[0]).backward()
        last["total"], last["parts"] = total.detach(), {k: v.detach() for k, v in parts.items()}
        if torch.isfinite(last["total"]):
            good.copy_(x.detach())
        return total * norm[0]

    for i in range(1, iterations + 1):
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        opt.step(closure)
        if optimizer == "adam":
            with torch.no_grad():
                x.clamp_(0, 1)
        if not torch.isfinite(last["total"]):
            # The previous step overflowed: go back to the last finite point and start afresh
            # with half the step size.
            failures += 1
            if failures > 8:
                raise SettingsError(
                    "the loss became non-finite; lower the learning rate or the loss weights"
                )
            with torch.no_grad():
                x.copy_(good)
            lr /= 2
            opt = _make_optimizer(optimizer, x, lr, history_size)
        else:
            failures = 0
        if on_step is not None:
            on_step(i, x.detach(), last["parts"], last["total"])
    return x.detach().clamp(0, 1)
