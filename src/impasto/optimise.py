"""Gradient descent on the pixels: the L-BFGS / Adam loop of one scale.

:class:`Descent` holds everything the loop changes (the image, the torch optimiser and its
history, the loss normaliser, the fall-back point, the step size after failures), so that it can
be saved and restored between iterations (:mod:`impasto.checkpoint`): a restored descent
continues exactly as the uninterrupted one would. :func:`optimise` runs one for a number of
iterations, reporting each to a callback.

An objective is ``image -> (total, components)``. Ordinarily the loop backpropagates ``total``;
an objective whose ``computes_gradient`` attribute is true (:class:`impasto.tiles.TiledObjective`)
fills ``image.grad`` itself, with the gradient of the unscaled total.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .choices import OPTIMIZERS
from .errors import Cancelled, SettingsError

__all__ = ["Descent", "optimise", "MAX_FAILURES"]

StepReport = Callable[[int, torch.Tensor, dict[str, torch.Tensor], torch.Tensor], None]
Snapshot = Callable[[int, Callable[[], dict[str, Any]]], None]
ObjectiveFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]

#: Consecutive non-finite losses tolerated (each halves the step size) before giving up.
MAX_FAILURES = 8
# A loss this many times the scale's first one is a blow-up, not progress: L-BFGS without a
# line search sometimes jumps far (seen with --margin: 933 -> 5.2e6) and comes back in the next
# iterations (resetting it there instead slowed texture synthesis badly: measured), but a scale
# that ended on such a jump returned it. See :meth:`Descent.settle`.
SPIKE = 10.0


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


class Descent:
    """The state of one scale's optimisation, advanced one iteration at a time.

    Args:
        start: ``(1, C, H, W)`` float32 start image in [0, 1] (not modified).
        objective: ``image -> (total, components)`` (see the module docstring).
        optimizer: one of :data:`impasto.choices.OPTIMIZERS`.
        lr: step size.
        history_size: L-BFGS memory (ignored by Adam).
        ema_decay: iterate averaging: when > 0, the result is an exponential moving average of
            the (clamped) iterates with this decay, started at ``start``; 0: the last iterate.

    Attributes:
        x: the live image (requires grad); read it detached.
        done: iterations completed.
        average: the running average of the iterates (None when ``ema_decay`` is 0).
        total: the loss of the last evaluation; ``parts``: its components (detached).
        steady: False only while the torch optimiser updates its state within :meth:`step`;
            an interruption (Ctrl-C) at any other moment, the objective's evaluation included,
            leaves the state of the last completed iteration, which :meth:`state_dict` can save.
    """

    def __init__(
        self,
        start: torch.Tensor,
        objective: ObjectiveFn,
        *,
        optimizer: str,
        lr: float,
        history_size: int,
        ema_decay: float = 0.0,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise SettingsError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        self.objective = objective
        self.name = optimizer
        self.lr = lr
        self.history_size = history_size
        # contiguous: L-BFGS views the gradient flat, and a start image resized from 1x1 px
        # (an expanded tensor) kept strides no flat view can take
        self.x = start.detach().float().clone(memory_format=torch.contiguous_format)
        self.x.requires_grad_(True)
        self.ema_decay = float(ema_decay)
        self.average = self.x.detach().clamp(0, 1) if self.ema_decay > 0 else None
        self.opt = _make_optimizer(optimizer, self.x, lr, history_size)
        self.good = self.x.detach().clone()  # the last point evaluated with a finite loss
        self.failures = 0
        self.done = 0
        self.norm: torch.Tensor | None = None
        self.total = torch.zeros(())
        self.parts: dict[str, torch.Tensor] = {}
        self.steady = True

    def _closure(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        x = self.x
        self.steady = True  # the evaluation changes nothing the state holds
        total, parts = self.objective(x)
        self.steady = False
        if self.norm is None:
            # Gatys' raw losses are ~1e10; torch's L-BFGS has absolute thresholds (curvature
            # pairs with y.s <= 1e-10 are dropped, after which it takes a raw gradient step of
            # ~1e8 pixels). Dividing by the first loss value (a constant) makes the objective
            # O(1); L-BFGS and Adam are otherwise invariant to such scaling.
            self.norm = 1.0 / total.detach().abs().clamp_min(1e-30)
        if getattr(self.objective, "computes_gradient", False):
            x.grad.mul_(self.norm)
        else:
            (total * self.norm).backward()
        self.total, self.parts = total.detach(), {k: v.detach() for k, v in parts.items()}
        if self._sound():
            self.good.copy_(x.detach())
        return total.detach() * self.norm

    def _sound(self) -> bool:
        """Whether the last evaluation is finite and no blow-up (see :data:`SPIKE`)."""
        return bool(torch.isfinite(self.total) & (self.total * self.norm <= SPIKE))  # one sync

    def step(self) -> None:
        """One iteration (one objective evaluation); recovers from a non-finite loss by going
        back to the last sound point with half the step size."""
        self.steady = False
        self.opt.step(self._closure)
        if self.name == "adam":
            with torch.no_grad():
                self.x.clamp_(0, 1)
        if not torch.isfinite(self.total):
            self.failures += 1
            if self.failures > MAX_FAILURES:
                raise SettingsError(
                    "the loss became non-finite; lower the learning rate or the loss weights"
                )
            with torch.no_grad():
                self.x.copy_(self.good)
            self.lr /= 2
            self.opt = _make_optimizer(self.name, self.x, self.lr, self.history_size)
        else:
            self.failures = 0
            if self.average is not None:
                with torch.no_grad():
                    self.average.lerp_(self.x.clamp(0, 1), 1.0 - self.ema_decay)
        self.done += 1
        self.steady = True

    def settle(self) -> None:
        """At the end of a scale: when its last evaluation was a blow-up (:data:`SPIKE`), go
        back to the last sound point rather than return the step taken from the blow-up."""
        if self.done and self.average is None and not self._sound():
            with torch.no_grad():
                self.x.copy_(self.good)

    def image(self) -> torch.Tensor:
        """The image the run would return now, live (unclamped for L-BFGS without averaging):
        the running average when averaging, else the current iterate. Clone it to keep it."""
        return self.x.detach() if self.average is None else self.average

    def result(self) -> torch.Tensor:
        """The image clamped to [0, 1] (detached copy). L-BFGS iterates are left unclamped
        during the run (clamping would corrupt its curvature pairs)."""
        return self.image().clamp(0, 1)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (tensors are live references: save or copy
        them before the next :meth:`step`)."""
        return {
            "optimizer": self.name,
            "lr": self.lr,
            "history_size": self.history_size,
            "x": self.x.detach(),
            "good": self.good,
            "failures": self.failures,
            "done": self.done,
            "norm": self.norm,
            "torch_optimizer": self.opt.state_dict(),
            "ema_decay": self.ema_decay,
            "average": self.average,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output (same optimiser and image size).

        The torch optimiser adopts the state's tensors and updates them in place: load a state
        once (e.g. fresh from :func:`torch.load`), not twice."""
        if state["optimizer"] != self.name or state["x"].shape != self.x.shape:
            raise SettingsError("saved optimiser state does not match this run")
        if float(state.get("ema_decay", 0.0)) != self.ema_decay:
            raise SettingsError("saved optimiser state averages the iterates differently")
        self.lr = float(state["lr"])
        self.history_size = int(state["history_size"])
        with torch.no_grad():
            self.x.copy_(state["x"])
            self.good.copy_(state["good"])
        self.failures = int(state["failures"])
        self.done = int(state["done"])
        norm = state["norm"]
        self.norm = None if norm is None else norm.to(self.x.device)
        if self.average is not None:
            with torch.no_grad():
                self.average.copy_(state["average"])
        self.opt = _make_optimizer(self.name, self.x, self.lr, self.history_size)
        self.opt.load_state_dict(state["torch_optimizer"])


class _DeferredInterrupt:
    """Ctrl-C while the torch optimiser updates its state (see :attr:`Descent.steady`) is held
    until the update ends, so that an interrupted run always has a whole state to save; at any
    other moment it interrupts at once. So is a SIGTERM whose handler is Python code (the
    CLI's, which takes Ctrl-C's path): the held signal's own handler runs once the update ends.
    Only in the main thread (signal handlers cannot be set elsewhere), for SIGINT with Python's
    default handling and SIGTERM with a Python handler; a no-op otherwise."""

    def __init__(self, descent: Descent) -> None:
        self.descent = descent
        self.pending: list[tuple[Any, int]] = []
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if handler is signal.default_int_handler or (
                signum == signal.SIGTERM and callable(handler)
            ):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.descent.steady:
            self.previous[signum](signum, frame)
        else:
            self.pending.append((self.previous[signum], signum))

    def check(self) -> None:
        """Run the handler of a signal held during the last update, if any (it raises)."""
        if self.pending:
            handler, signum = self.pending[0]
            self.pending.clear()
            handler(signum, None)

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def optimise(
    start: torch.Tensor,
    objective: ObjectiveFn,
    *,
    iterations: int,
    optimizer: str,
    lr: float,
    history_size: int,
    ema_decay: float = 0.0,
    on_step: StepReport | None = None,
    cancel: threading.Event | None = None,
    resume: Mapping[str, Any] | None = None,
    snapshot: Snapshot | None = None,
    on_interrupt: Snapshot | None = None,
) -> torch.Tensor:
    """Minimise ``objective`` over the pixels of ``start``.

    Args:
        start: ``(1, C, H, W)`` float32 start image in [0, 1] (not modified).
        objective: ``image -> (total, components)`` (see the module docstring).
        iterations: number of iterations (one objective evaluation each), counting those done
            before ``resume``.
        optimizer, lr, history_size, ema_decay: as for :class:`Descent`.
        on_step: called after each iteration with ``(i, image, components, total)``
            (1-based ``i``; ``image``: :meth:`Descent.image`, live: clone it to keep it).
        cancel: when set, the loop raises :class:`Cancelled` before the next iteration.
        resume: a :meth:`Descent.state_dict` to continue from (``start`` is then ignored but
            gives the shape).
        snapshot: called after ``on_step`` with ``(i, state)``; ``state()`` returns the
            descent's :meth:`Descent.state_dict`, valid until the next iteration (call it, e.g.
            to write a checkpoint, only when needed: it costs nothing otherwise).
        on_interrupt: called like ``snapshot`` when Ctrl-C (:class:`KeyboardInterrupt`) or
            :class:`Cancelled` stops the loop at a moment the state is whole (see
            :attr:`Descent.steady`; the state is then that of the last completed iteration),
            before the exception goes on.

    Returns:
        The optimised image, clamped to [0, 1] (detached).
    """
    opts = dict(optimizer=optimizer, lr=lr, history_size=history_size, ema_decay=ema_decay)
    d = Descent(start, objective, **opts)
    if resume is not None:
        d.load_state_dict(resume)
    try:
        with _DeferredInterrupt(d) as interrupts:
            while d.done < iterations:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                d.step()
                interrupts.check()
                if on_step is not None:
                    on_step(d.done, d.image(), d.parts, d.total)
                if snapshot is not None:
                    snapshot(d.done, d.state_dict)
    except (KeyboardInterrupt, Cancelled):
        if on_interrupt is not None and d.steady:
            on_interrupt(d.done, d.state_dict)
        raise
    d.settle()
    return d.result()
