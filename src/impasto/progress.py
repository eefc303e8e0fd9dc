"""A run's progress as its callback sees it: each optimiser step as an
:class:`~impasto.callbacks.Iterate`, each tile of a tiled iteration as a :class:`TileTick` (to
the callback's ``on_tile``), each message for the log as a :class:`Note` (to its ``on_note``,
else the ``impasto`` logger); and what a run keeps of them (history, notes, memory plans), which
a checkpoint saves and a resume restores. The CLI's progress bar, the web studio's live view
and the Python API all read this one stream.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .callbacks import Callback, Iterate
from .image import crop_edges
from .plan import Plan
from .schedule import Scale

__all__ = ["Note", "PASS_SHARE", "Progress", "TileTick"]

log = logging.getLogger("impasto")

#: ``(width, height)`` in pixels.
Size = tuple[int, int]

# Share of an iteration's work in each pass of a tiled evaluation (pass 1: forward only;
# pass 2: forward and backward, about three forwards).
PASS_SHARE = {1: 0.25, 2: 0.75}


@dataclass(frozen=True)
class Note:
    """A message of a run for its log.

    Attributes:
        kind: ``"memory"`` (the budget, and per scale what was chosen and why), ``"upscale"``
            (a painting enlarged past its own resolution) or ``"init"`` (a start image cropped
            to the output's aspect ratio, or which painting ``init style`` starts from).
        text: one line.
        warning: True when it changes what the user asked for (e.g. a shorter L-BFGS history) or
            hurts the result; the CLI prints warnings always, the rest with ``-v``.
    """

    kind: str
    text: str
    warning: bool = False


@dataclass(frozen=True)
class TileTick:
    """Progress within one iteration of a tiled scale (after each tile of each pass).

    Attributes:
        scale, n_scales, size: as in :class:`Iterate`.
        step, total_steps: the iteration being computed (1-based, over the run) and the total.
        phase: 1 (the pass without gradients) or 2 (the pass with gradients).
        tile, tiles: the tile just done (1-based) and the number of tiles.
        progress: fraction of the run's pixel-weighted work done.
        elapsed: seconds since the run started.
    """

    scale: int
    n_scales: int
    size: Size
    step: int
    total_steps: int
    phase: int
    tile: int
    tiles: int
    progress: float
    elapsed: float


@dataclass
class Progress:
    """Turns each optimiser step into an :class:`Iterate` for the callback, reports tiles and
    notes, and keeps the run's history (per step: scale, elapsed seconds, total and weighted loss
    components), its notes and the memory plan of each scale."""

    plan: Plan
    callback: Callback | None = None
    started: float = field(default_factory=time.perf_counter)
    history: list[dict] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    memory: list[dict] = field(default_factory=list)
    _done: int = 0
    _work_done: int = 0
    _i: int = 0

    @property
    def total_work(self) -> int:
        """Pixel-weighted work of the run: a full-size iteration costs several coarse ones."""
        return max(1, sum(sc.iterations * sc.size[0] * sc.size[1] for sc in self.plan.scales))

    def step(self, k: int, i: int, image: torch.Tensor, parts: dict, total: torch.Tensor) -> None:
        """Report iteration ``i`` (1-based) of scale ``k``; ``image`` is the live iterate."""
        sc = self.plan.scales[k]
        self._i = i
        losses = {name: float(v) for name, v in parts.items()}
        it = Iterate(
            step=self._done + i,
            total_steps=self.plan.total_steps,
            scale=k,
            n_scales=len(self.plan.scales),
            size=sc.size,
            i=i,
            i_max=sc.iterations,
            loss=float(total),
            losses=losses,
            elapsed=time.perf_counter() - self.started,
            image=self.plan.colors.to_network(crop_edges(image, sc.margin)),
            progress=(self._work_done + i * sc.size[0] * sc.size[1]) / self.total_work,
        )
        self.history.append(
            {"step": it.step, "scale": k, "elapsed": it.elapsed, "loss": it.loss, **losses}
        )
        if self.callback is not None:
            self.callback(it)

    def tile(self, k: int, phase: int, tile: int, tiles: int) -> None:
        """Report tile ``tile`` of ``tiles`` of ``phase`` in the current iteration of scale
        ``k`` to the callback's ``on_tile`` (if it has one)."""
        hook = getattr(self.callback, "on_tile", None)
        if hook is None:
            return
        sc = self.plan.scales[k]
        done = tile / tiles
        part = PASS_SHARE[1] * done if phase == 1 else PASS_SHARE[1] + PASS_SHARE[2] * done
        area = sc.size[0] * sc.size[1]
        hook(
            TileTick(
                scale=k,
                n_scales=len(self.plan.scales),
                size=sc.size,
                step=self._done + self._i + 1,
                total_steps=self.plan.total_steps,
                phase=phase,
                tile=tile,
                tiles=tiles,
                progress=(self._work_done + (self._i + part) * area) / self.total_work,
                elapsed=time.perf_counter() - self.started,
            )
        )

    def note(self, kind: str, text: str, warning: bool = False) -> None:
        """Record a :class:`Note` and hand it to the callback's ``on_note`` (else the log)."""
        n = Note(kind, text, warning)
        self.notes.append(n)
        hook = getattr(self.callback, "on_note", None)
        if hook is not None:
            hook(n)
        else:
            log.log(logging.WARNING if warning else logging.INFO, text)

    def scale_done(self, sc: Scale) -> None:
        self._done += sc.iterations
        self._work_done += sc.iterations * sc.size[0] * sc.size[1]
        self._i = 0

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the progress (plain data)."""
        return {
            "history": self.history,
            "done": self._done,
            "work_done": self._work_done,
            "elapsed": time.perf_counter() - self.started,
            "memory": self.memory,
        }

    def restore(self, state: dict[str, Any], level: int, iteration: int) -> None:
        """Continue from :meth:`state` at iteration ``iteration`` of scale ``level``."""
        self.history = list(state["history"])
        self._done, self._work_done, self._i = state["done"], state["work_done"], iteration
        self.started = time.perf_counter() - state["elapsed"]
        self.memory = [m for m in state["memory"] if m["scale"] < level]
