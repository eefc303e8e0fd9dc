"""A per-scale L-BFGS loop without host syncs, and its CUDA-graph capture (a proposal for the
engine, kept here behind one function until the optimiser's owner adopts it).

torch's ``LBFGS.step`` talks to the host several times an iteration (``float(loss)``, the
``ys > 1e-10`` test, ``min(1, 1/|g|_1)``, ``gtd > -tol``, the history lists), and the eager
forward/backward launches a few hundred small kernels; on a fast GPU the loop is launch-bound.
:class:`StaticLBFGS` is the same algorithm (torch's two-loop recursion, ``max_iter=1``, no line
search; its iterates match torch's, see ``tests/test_benchmark_harness.py``) with fixed-size
history buffers and every decision made on the device with ``torch.where``, so one iteration
(objective, backward, update) has static shapes and no sync and can be captured once per scale
into a CUDA graph and replayed (:func:`minimise_graphed`).

Interface for the engine (what ``optimise`` would call on CUDA when nothing needs a per-iteration
report): ``minimise_graphed(x0, objective, iterations, history=20, lr=1.0, report_every=0,
on_report=None) -> image``. ``objective(image) -> (total, parts)`` is the existing
:class:`impasto.objective.Objective`; nothing in it changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["StaticLBFGS", "minimise_static", "minimise_graphed"]

Objective = Callable[[torch.Tensor], tuple[torch.Tensor, dict]]


class StaticLBFGS:
    """torch's L-BFGS (``max_iter=1``, ``tolerance_grad=tolerance_change=0``, no line search)
    with its state in fixed-size device buffers.

    The newest curvature pair is the last row of ``s``/``y``; empty rows have ``rho = 0`` and so
    drop out of the two-loop recursion exactly as absent pairs do in torch's lists.
    """

    def __init__(self, n: int, history: int, lr: float, device, dtype=torch.float32) -> None:
        z = dict(device=device, dtype=dtype)
        self.m, self.lr = history, lr
        self.s = torch.zeros(history, n, **z)
        self.y = torch.zeros(history, n, **z)
        self.rho = torch.zeros(history, **z)
        self.d = torch.zeros(n, **z)
        self.t = torch.zeros((), **z)
        self.h = torch.ones((), **z)
        self.prev_g = torch.zeros(n, **z)
        self.started = False

    @torch.no_grad()
    def step(self, x: torch.Tensor, grad: torch.Tensor) -> None:
        """One iteration: update the history from ``grad``, then ``x += t d`` in place."""
        g = grad.reshape(-1)
        if not self.started:  # torch's first iteration: steepest descent, t = min(1, 1/|g|_1)
            self.started = True
            self.d.copy_(-g)
            self.t.copy_(torch.clamp(1.0 / g.abs().sum(), max=1.0) * self.lr)
        else:
            y = g - self.prev_g
            s = self.d * self.t
            ys = torch.dot(y, s)
            ok = ys > 1e-10
            self.s.copy_(torch.where(ok, torch.cat([self.s[1:], s[None]]), self.s))
            self.y.copy_(torch.where(ok, torch.cat([self.y[1:], y[None]]), self.y))
            rho = torch.cat([self.rho[1:], (1.0 / ys).reshape(1)])
            self.rho.copy_(torch.where(ok, rho, self.rho))
            self.h.copy_(torch.where(ok, ys / torch.dot(y, y), self.h))
            q = -g
            al = [None] * self.m
            for i in range(self.m - 1, -1, -1):
                al[i] = torch.dot(self.s[i], q) * self.rho[i]
                q = q - al[i] * self.y[i]
            r = q * self.h
            for i in range(self.m):
                be = torch.dot(self.y[i], r) * self.rho[i]
                r = r + self.s[i] * (al[i] - be)
            self.d.copy_(r)
            self.t.fill_(self.lr)
        self.prev_g.copy_(g)
        descent = torch.dot(g, self.d) <= 0  # torch stops (no step) when g.d > -0
        step = torch.where(descent, self.t, torch.zeros_like(self.t))
        x.view(-1).add_(self.d * step)


def _evaluate(x: torch.Tensor, objective: Objective, norm: torch.Tensor) -> torch.Tensor:
    total, _ = objective(x)
    (total * norm).backward()
    return total.detach()


def _first(x0: torch.Tensor, objective: Objective, history: int, lr: float):
    x = x0.detach().clone().float().requires_grad_(True)
    opt = StaticLBFGS(x.numel(), history, lr, x.device)
    total, _ = objective(x)
    norm = 1.0 / total.detach().abs().clamp_min(1e-30)  # as impasto.optimise: O(1) objective
    (total * norm).backward()
    opt.step(x, x.grad)
    return x, opt, norm


def minimise_static(
    x0: torch.Tensor, objective: Objective, iterations: int, history: int = 20, lr: float = 1.0
) -> torch.Tensor:
    """:class:`StaticLBFGS` eagerly (any device): the same iterates as the product's loop."""
    x, opt, norm = _first(x0, objective, history, lr)
    for _ in range(iterations - 1):
        x.grad = None
        _evaluate(x, objective, norm)
        opt.step(x, x.grad)
    return x.detach().clamp(0, 1)


def minimise_graphed(
    x0: torch.Tensor,
    objective: Objective,
    iterations: int,
    history: int = 20,
    lr: float = 1.0,
    warmup: int = 3,
    report_every: int = 0,
    on_report: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """The same loop on CUDA with iterations 2.. replayed from one captured CUDA graph.

    Iteration 1 and ``warmup`` more run eagerly (on a side stream, as capture requires), then
    one iteration (objective, backward, L-BFGS update) is captured and replayed. ``on_report(i,
    image, total)`` is called every ``report_every`` iterations (it may sync; nothing else does).
    """
    x, opt, norm = _first(x0, objective, history, lr)
    done = 1
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(min(warmup, iterations - 1)):
            x.grad = None
            _evaluate(x, objective, norm)
            opt.step(x, x.grad)
            done += 1
    torch.cuda.current_stream().wait_stream(side)
    if done >= iterations:
        return x.detach().clamp(0, 1)
    graph = torch.cuda.CUDAGraph()
    x.grad = None
    with torch.cuda.graph(graph):
        total = _evaluate(x, objective, norm)
        opt.step(x, x.grad)
    while done < iterations:
        graph.replay()
        done += 1
        if on_report is not None and report_every and done % report_every == 0:
            on_report(done, x.detach(), total)
    return x.detach().clamp(0, 1)
