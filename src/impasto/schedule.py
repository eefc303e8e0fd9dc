"""Coarse-to-fine scheduling: which sizes to optimise at, and for how many iterations.

A pyramid starts at a small long side, optimises there (cheaply), upsamples the result and
continues at the next size, up to the requested one. Style and content targets are recomputed at
every scale. Not in Gatys et al. 2016; later work (Gatys et al. 2017, "Controlling Perceptual
Factors", section 5) uses the same idea for high resolutions.
"""

from __future__ import annotations

from dataclasses import dataclass

from .image import fit_long_side
from .settings import Settings, pyramid_sides

__all__ = ["Scale", "plan_scales", "scales_of"]


@dataclass(frozen=True)
class Scale:
    """One stage of the schedule: the image size ``(width, height)``, its iterations, and the
    margin: pixels of extra canvas on every side, optimised with the image and cropped from it
    (the edges' rim forms there instead of on the image)."""

    size: tuple[int, int]
    iterations: int
    margin: int = 0

    @property
    def canvas(self) -> tuple[int, int]:
        """``(width, height)`` of what is optimised: the image and its margin."""
        return self.size[0] + 2 * self.margin, self.size[1] + 2 * self.margin


def plan_scales(
    content_size: tuple[int, int],
    size: int,
    iterations: int,
    pyramid_start: int = 0,
    pyramid_iterations: int = 0,
    pyramid_factor: float = 2.0,
    margin: int = 0,
) -> list[Scale]:
    """The list of scales for a run.

    Args:
        content_size: the content image's ``(width, height)`` (only its aspect matters).
        size: long side of the output.
        iterations: iterations at the final (full) size.
        pyramid_start: long side of the coarsest scale; 0, or >= ``size``, means a single scale.
        pyramid_iterations: iterations at each coarser scale.
        pyramid_factor: largest ratio between successive long sides (steps are geometric).
        margin: pixels of extra canvas on every side, at every scale.

    Returns:
        Scales from coarsest to finest; the last one is always ``size``.

    >>> [s.size for s in plan_scales((400, 300), 512, 100, 128, 50)]
    [(128, 96), (256, 192), (512, 384)]
    """
    sides = pyramid_sides(size, pyramid_start, pyramid_iterations, pyramid_factor)
    return [
        Scale(
            fit_long_side(content_size, s),
            iterations if i == len(sides) - 1 else pyramid_iterations,
            margin,
        )
        for i, s in enumerate(sides)
    ]


def scales_of(settings: Settings, content_size: tuple[int, int]) -> list[Scale]:
    """:func:`plan_scales` with the run's settings (size, iterations, pyramid, margin)."""
    s = settings
    return plan_scales(
        content_size,
        s.size,
        s.iterations,
        s.pyramid_start,
        s.pyramid_iterations,
        s.pyramid_factor,
        s.margin,
    )
