"""Progress reporting: the :class:`Iterate` record and the callbacks that consume it.

The optimisation loop knows nothing about terminals, files or web sockets. After every iteration
it builds one :class:`Iterate` and hands it to a callback; the CLI's progress bar, periodic saves,
the web app's live preview and the Python API's history all are such callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

__all__ = ["Iterate", "Callback", "CallbackList", "History"]


@dataclass(frozen=True)
class Iterate:
    """The state of a run after one optimiser iteration.

    Attributes:
        step: 1-based iteration count over the whole run (all scales).
        total_steps: iterations planned over the whole run.
        scale: 0-based index of the current scale of the pyramid.
        n_scales: number of scales.
        size: ``(width, height)`` of the image being optimised at this scale.
        i: 1-based iteration within this scale; ``i_max`` iterations are planned at it.
        i_max: iterations planned at this scale.
        loss: the weighted total, eq. (7) (plus TV if enabled).
        losses: the weighted components, e.g. ``{"content": ..., "style": ..., "tv": ...}``.
        elapsed: seconds since the run started (target computation included).
        image: the current image, ``(1, 3, H, W)`` RGB in [0, 1], detached. Do not modify it.
    """

    step: int
    total_steps: int
    scale: int
    n_scales: int
    size: tuple[int, int]
    i: int
    i_max: int
    loss: float
    losses: dict[str, float]
    elapsed: float
    image: torch.Tensor = field(repr=False)

    @property
    def is_last(self) -> bool:
        """True for the final iteration of the whole run."""
        return self.step == self.total_steps

    @property
    def rate(self) -> float:
        """Iterations per second so far (0 before the first second has a meaning)."""
        return self.step / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds left, estimated from the mean rate so far."""
        rate = self.rate
        return (self.total_steps - self.step) / rate if rate > 0 else float("nan")


Callback = Callable[[Iterate], None]
"""A callback takes an :class:`Iterate`. Raising :class:`impasto.errors.Cancelled` stops the run."""


class CallbackList:
    """Calls several callbacks in order; ``None`` entries are skipped."""

    def __init__(self, callbacks: Iterable[Callback | None]):
        self.callbacks = [cb for cb in callbacks if cb is not None]

    def __call__(self, it: Iterate) -> None:
        for cb in self.callbacks:
            cb(it)


class History:
    """Records ``(step, elapsed, loss, losses)`` of every iteration (the image is not kept)."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def __call__(self, it: Iterate) -> None:
        self.records.append(
            {"step": it.step, "scale": it.scale, "elapsed": it.elapsed, "loss": it.loss, **it.losses}
        )
