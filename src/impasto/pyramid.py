"""Stage 2 of a run: the coarse-to-fine pyramid, one scale at a time.

For each scale of the :class:`~impasto.plan.Plan`: resize the inputs, get the targets (from the
cache or computed once), build the objective, make the start image (the first scale) or upsample
the previous scale's result, and optimise. :func:`scale_objective` is the one place that decides
how a scale's objective is evaluated (whole image today; the place where exact tiles plug in).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import torch

from . import balance
from .cache import RunCache
from .callbacks import Callback, Iterate
from .guides import background_guide, feather_guide, resize_guide
from .image import fit_long_side, resize
from .objective import Objective, RegionInput, Targets, compute_targets
from .optimise import optimise
from .plan import Plan, StyleSource
from .schedule import Scale

__all__ = ["Progress", "run_pyramid", "scale_targets", "scale_objective", "start_image"]

# Gaussian white noise around mid-grey for the "noise" start (std in [0, 1] pixel units).
NOISE_MEAN, NOISE_STD = 0.5, 0.2

Size = tuple[int, int]


@dataclass
class Progress:
    """Turns each optimiser step into an :class:`Iterate` for the callback, and keeps the run's
    history (per step: scale, elapsed seconds, total and weighted loss components)."""

    plan: Plan
    callback: Callback | None = None
    started: float = field(default_factory=time.perf_counter)
    history: list[dict] = field(default_factory=list)
    _done: int = 0
    _work_done: int = 0

    @property
    def total_work(self) -> int:
        """Pixel-weighted work of the run: a full-size iteration costs several coarse ones."""
        return max(1, sum(sc.iterations * sc.size[0] * sc.size[1] for sc in self.plan.scales))

    def step(self, k: int, i: int, image: torch.Tensor, parts: dict, total: torch.Tensor) -> None:
        """Report iteration ``i`` (1-based) of scale ``k``; ``image`` is the live iterate."""
        sc = self.plan.scales[k]
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
            image=self.plan.colors.to_network(image),
            progress=(self._work_done + i * sc.size[0] * sc.size[1]) / self.total_work,
        )
        self.history.append(
            {"step": it.step, "scale": k, "elapsed": it.elapsed, "loss": it.loss, **losses}
        )
        if self.callback is not None:
            self.callback(it)

    def scale_done(self, sc: Scale) -> None:
        self._done += sc.iterations
        self._work_done += sc.iterations * sc.size[0] * sc.size[1]


def _style_at(src: StyleSource, plan: Plan, size: Size) -> torch.Tensor:
    """A painting resized so its long side is its scale x the output's (short side >= 16 px)."""
    sw, sh = src.rgb.shape[-1], src.rgb.shape[-2]
    side = round(max(size) * src.scale(plan.settings))
    side = max(16, side, math.ceil(16 * max(sw, sh) / min(sw, sh)))
    return resize(src.rgb, fit_long_side((sw, sh), side)).to(plan.device)


def _region_inputs(plan: Plan, size: Size) -> list[RegionInput]:
    """The regions at one scale: feathered guides, and the global styles (if any) as one more
    region over what no region covers."""
    if not plan.regions:
        return []
    guides = [
        feather_guide(resize_guide(r.guide, size), r.region.feather * max(size))
        for r in plan.regions
    ]
    out = [
        RegionInput(
            g.to(plan.device),
            [_style_at(r.style, plan, size)],
            layer_sets=[r.style.input.layers],
            weight=r.region.weight,
        )
        for r, g in zip(plan.regions, guides)
        if r.style is not None
    ]
    if plan.styles:
        rest = background_guide(guides).to(plan.device)
        out.append(
            RegionInput(
                rest,
                [_style_at(st, plan, size) for st in plan.styles],
                [st.input.weight for st in plan.styles],
                [st.input.layers for st in plan.styles],
            )
        )
    return out


def scale_targets(plan: Plan, size: Size, encoder, cache: RunCache) -> Targets:
    """The targets at one scale: the photo's features and the paintings' Grams, each from the
    cache when known."""

    def content(layers: tuple[str, ...]) -> Targets:
        photo = resize(plan.content, size).to(plan.device)
        return compute_targets(encoder, photo, layers, [], [])

    def style(layers: tuple[str, ...]) -> Targets:
        regions = _region_inputs(plan, size)
        paintings = [] if plan.regions else [_style_at(st, plan, size) for st in plan.styles]
        return compute_targets(
            encoder,
            None,
            [],
            paintings,
            layers,
            [st.input.weight for st in plan.styles],
            style_layer_sets=[st.input.layers for st in plan.styles],
            regions=regions,
            propagation=plan.settings.guide_propagation,
        )

    s = plan.settings
    at = (s.pooling, s.weights, s.weights_format, str(plan.device), plan.dtype, size)
    c = cache.content_targets((plan.content_key, at), plan.content_layers, content)
    st = cache.style_targets((plan.style_key, at), plan.style_layers, style)
    return Targets(c.content, st.grams, st.regions)


def scale_objective(plan: Plan, targets: Targets, size: Size, encoder) -> Objective:
    """The objective of one scale, ``image -> (total, components)`` (a 1-channel luminance
    image is expanded to the network's three channels by the objective itself).

    The loss scale (:mod:`impasto.balance`) sets the effective weights: ``paper`` keeps the raw
    eqs. (1)-(7); ``normalized`` divides each term by its target's magnitude. Departure
    (coarse-to-fine, paper scale only): eq. (1) sums over positions, so it grows with the pixel
    count while eq. (4) does not; alpha is scaled by (final area / this area) to keep the
    alpha/beta balance of the final size at every coarser scale.
    """
    s = plan.settings
    alpha = s.content_weight * balance.content_area_factor(s.loss_scale, plan.size, size)
    content_w, style_w = balance.layer_weights(
        targets, s.loss_scale, plan.content_weights, plan.style_weights
    )
    tv = s.tv_weight * balance.tv_factor(s.loss_scale, size, plan.colors.channels)
    return Objective(encoder, targets, alpha, s.beta, content_w, style_w, tv)


def start_image(plan: Plan, size: Size) -> torch.Tensor:
    """The first scale's start image, ``(1, channels, h, w)`` on the CPU."""
    w, h = size
    init = plan.settings.init
    if init == "noise":
        g = torch.Generator().manual_seed(plan.seed)
        noise = torch.randn((1, plan.colors.channels, h, w), generator=g)
        return (noise * NOISE_STD + NOISE_MEAN).clamp(0, 1)
    if init == "content":
        img = resize(plan.content, size)
    elif init == "style":
        first = plan.styles[0] if plan.styles else next(r.style for r in plan.regions if r.style)
        img = resize(first.rgb, size)
    else:
        img = resize(plan.init_image.rgb, size)
    return plan.colors.start(img)


def run_scale(
    plan: Plan,
    k: int,
    x: torch.Tensor | None,
    cache: RunCache,
    progress: Progress,
    cancel: threading.Event | None,
) -> torch.Tensor:
    """Optimise scale ``k`` from ``x`` (the previous scale's result, or None for the first)."""
    s, sc = plan.settings, plan.scales[k]
    encoder = cache.encoder(s, plan.device, plan.dtype, [*plan.content_layers, *plan.style_layers])
    targets = scale_targets(plan, sc.size, encoder, cache)
    objective = scale_objective(plan, targets, sc.size, encoder)
    x = start_image(plan, sc.size) if x is None else resize(x, sc.size)
    x = optimise(
        x.to(plan.device),
        objective,
        iterations=sc.iterations,
        optimizer=s.optimizer,
        lr=s.lr,
        history_size=s.lbfgs_history,
        on_step=lambda i, img, parts, total: progress.step(k, i, img, parts, total),
        cancel=cancel,
    )
    progress.scale_done(sc)
    return x


def run_pyramid(
    plan: Plan, cache: RunCache, progress: Progress, cancel: threading.Event | None = None
) -> torch.Tensor:
    """All scales, coarsest first; returns the final image ``(1, channels, H, W)``."""
    x = None
    for k in range(len(plan.scales)):
        x = run_scale(plan, k, x, cache, progress, cancel)
    return x
