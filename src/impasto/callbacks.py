"""Progress reporting: the :class:`Iterate` record and the callbacks that consume it.

The optimisation loop knows nothing about terminals, files or web sockets. After every iteration
it builds one :class:`Iterate` and hands it to a callback; the CLI's progress bar, periodic saves,
the web app's live preview and the Python API's history (kept by
:class:`impasto.progress.Progress`) all consume it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

__all__ = ["Iterate", "Callback", "ProgressBar"]


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
        image: the current image, ``(1, 3, H, W)`` RGB, detached: a live, unclamped view of the
            optimiser's iterate (L-BFGS iterates may leave [0, 1] slightly). Do not modify it;
            to keep it, take ``image.clamp(0, 1)`` (a copy).
        progress: fraction of the run's work done, counting each iteration by its pixel count
            (a full-size iteration of a pyramid costs several coarse ones); None: by steps.
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
    progress: float | None = None

    @property
    def is_last(self) -> bool:
        """True for the final iteration of the whole run."""
        return self.step == self.total_steps

    @property
    def rate(self) -> float:
        """Iterations per second since the run started, setup and every scale included (0 before
        any time has passed); the CLI's bar shows the current scale's own rate instead
        (:meth:`ProgressBar.scale_rate`)."""
        return self.step / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds left, estimated from the work done so far (pixel-weighted when known)."""
        done = self.progress if self.progress is not None else self.step / self.total_steps
        if done <= 0 or self.elapsed <= 0:
            return float("nan")
        return self.elapsed * (1 - done) / done


Callback = Callable[[Iterate], None]
"""A callback takes an :class:`Iterate`. Raising :class:`impasto.errors.Cancelled` stops the run."""


def _fmt_losses(losses: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3g}" for k, v in losses.items())


class ProgressBar:
    """tqdm progress bar (iteration, loss components, it/s, ETA), periodic saves and verbose logs.

    Use as a context manager so the bar is closed even when the run fails. ``save`` is called
    with the :class:`Iterate` every ``save_every`` iterations (and never on the last one: the final
    result is written by the caller); :meth:`save_latest` saves the last one seen, for a run
    that was interrupted between two saves.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        verbose: bool = False,
        save_every: int = 0,
        save: Callable[[Iterate], None] | None = None,
        file=None,
    ) -> None:
        self.enabled = enabled
        self.verbose = verbose
        self.save_every = save_every
        self.save = save
        self.file = file
        self.bar = None
        self._scale = -1
        self._last: Iterate | None = None
        self._saved = 0  # the step last saved
        self._scale_start = (0, 0.0)  # (i, elapsed) of the current scale's first iterate seen

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def save_latest(self) -> None:
        """Save the last iterate seen unless it was saved (an interrupted run's output then
        holds where it stopped, not up to ``save_every`` steps before)."""
        if self.save is not None and self.save_every and self._last is not None:
            if self._last.step != self._saved:
                self._saved = self._last.step
                self.save(self._last)

    def scale_rate(self, it: Iterate) -> float | None:
        """Iterations per second at the current scale, from its first iterate seen to ``it``
        (None before a second one): a pyramid's scales differ in speed, and a run's setup (or
        a resumed run's earlier session) is no iteration."""
        i0, t0 = self._scale_start
        return (it.i - i0) / (it.elapsed - t0) if it.i > i0 and it.elapsed > t0 else None

    def _draw(self, it: Iterate) -> None:
        done = it.progress if it.progress is not None else it.step / it.total_steps
        if self.bar is None:
            from tqdm.auto import tqdm

            # The bar advances by pixel-weighted work (a full-size iteration of a pyramid
            # costs several coarse ones), so tqdm's elapsed<remaining is a true ETA; it starts
            # at the work already done (a resumed run), which its rate then leaves out.
            # Created with its first description and drawn only on the first update, so no
            # empty "0%|" line precedes the run.
            self.bar = tqdm(
                total=1000,
                initial=round(1000 * done),
                file=self.file,
                dynamic_ncols=True,
                desc=f"{it.size[0]}x{it.size[1]} it {it.step}/{it.total_steps}",
                delay=1e-9,
                bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}",
            )
        rate = self.scale_rate(it)
        shown = "" if rate is None else f"{rate:.2f} it/s "
        self.bar.set_description_str(
            f"{it.size[0]}x{it.size[1]} it {it.step}/{it.total_steps}", refresh=False
        )
        self.bar.set_postfix_str(
            f"{shown}loss={it.loss:.3g} {_fmt_losses(it.losses)}", refresh=False
        )
        self.bar.update(round(1000 * done) - self.bar.n)

    def __call__(self, it: Iterate) -> None:
        self._last = it
        new_scale = it.scale != self._scale
        if new_scale:
            self._scale, self._scale_start = it.scale, (it.i, it.elapsed)
        if self.enabled:
            self._draw(it)
            if self.verbose and new_scale:
                self.bar.write(
                    f"scale {it.scale + 1}/{it.n_scales}: {it.size[0]}x{it.size[1]} px, "
                    f"{it.i_max} iterations"
                )
            if self.verbose and (it.i % 50 == 0 or it.i == it.i_max):
                self.bar.write(
                    f"step {it.step}/{it.total_steps} loss={it.loss:.4g} {_fmt_losses(it.losses)}"
                )
        if (
            self.save is not None
            and self.save_every
            and it.step % self.save_every == 0
            and not it.is_last
        ):
            self._saved = it.step
            self.save(it)
