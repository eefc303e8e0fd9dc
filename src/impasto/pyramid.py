"""Stage 2 of a run: the coarse-to-fine pyramid, one scale at a time.

For each scale of the :class:`~impasto.plan.Plan`: choose how it fits the memory budget
(:func:`scale_memory`: the whole image, or exact tiles, and the optimiser's state), resize the
inputs, get the targets (from the cache or computed once, tile by tile when the scale is tiled),
build the objective, make the start image (the first scale) or upsample the previous scale's
result (:func:`carry`), and optimise. With a margin (``Settings.margin``), every scale optimises
a canvas that many pixels larger on every side (the photo mirrored into it), and the result is
cropped at the end. :func:`scale_objective` is the one place that decides the loss of a scale;
:func:`evaluator` decides how it is evaluated (whole, or :class:`~impasto.tiles.TiledObjective`).

Long runs save checkpoints (:class:`Checkpoints`: every few minutes, on Ctrl-C and on cancel)
and continue from one exactly (``run_pyramid(..., resume=checkpoint)``).

Each step, tile and message (the memory plan of each scale and why, a painting enlarged past
its own resolution, a start image cropped to the output's aspect ratio) goes through a
:class:`~impasto.progress.Progress` to the run's callback.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from . import balance
from .cache import RunCache, network_key
from .checkpoint import Autosave, Checkpoint, CheckpointError, restore_rng, rng_state
from .errors import SettingsError
from .guides import background_guide, feather_guide, propagate_guide, resize_guide
from .image import crop_edges, crop_to_aspect, fit_long_side, pad_edges, resize
from .layers import LAYER_NAMES, layer_channels
from .memory import BUDGET_SETTING, MemoryPlan, device_budget, format_bytes, plan_memory
from .objective import MIN_MASS, Objective, RegionInput, Targets, compute_targets, guide_mass
from .optimise import optimise
from .plan import Plan, RegionSource, StyleSource
from .progress import Progress, Size
from .schedule import Scale
from .settings import Settings, resolve_weights
from .tiles import TiledEncoder, TiledObjective, alignment, required_halo

__all__ = [
    "BUDGET_SETTING",
    "Checkpoints",
    "canvas_memory",
    "carry",
    "check_resume",
    "evaluator",
    "memory_budget",
    "run_pyramid",
    "run_scale",
    "scale_memory",
    "scale_objective",
    "scale_targets",
    "start_image",
]

# Gaussian white noise around mid-grey for the "noise" start (std in [0, 1] pixel units).
NOISE_MEAN, NOISE_STD = 0.5, 0.2


def _style_at(src: StyleSource, plan: Plan, size: Size) -> torch.Tensor:
    """A painting resized so its long side is its scale x the output's (short side >= 16 px)."""
    sw, sh = src.rgb.shape[-1], src.rgb.shape[-2]
    side = round(max(size) * src.scale(plan.settings))
    side = max(16, side, math.ceil(16 * max(sw, sh) / min(sw, sh)))
    return resize(src.rgb, fit_long_side((sw, sh), side)).to(plan.device)


def check_regions_reach_the_layers(plan: Plan) -> None:
    """Refuse, before any work, a styled region whose guide reaches no position of any style
    layer at the full size (with ``guide_propagation='inside'``, a region smaller than the
    layers' receptive fields): its style vanished without a word.

    Raises:
        SettingsError: naming the region.
    """
    sc, how = plan.scales[-1], plan.settings.guide_propagation
    for r in plan.regions:
        if r.style is None or not plan.style_layers:
            continue
        reached = propagate_guide(_guide_at(r, sc.size, sc.margin), plan.style_layers, how)
        if not any(guide_mass(g) >= MIN_MASS for g in reached.values()):
            hint = "guide_propagation 'area' or " if how == "inside" else ""
            raise SettingsError(  # headed by a setting, which the CLI names as its flag
                f"size: region {r.region.name} reaches no position of any style layer at "
                f"{sc.size[0]}x{sc.size[1]} with guide_propagation '{how}'; raise it, or use "
                f"{hint}a larger region"
            )


def _guide_at(r: RegionSource, size: Size, margin: int) -> torch.Tensor:
    """A region's guide at one scale: resized, feathered, its edges repeated into the margin."""
    guide = feather_guide(resize_guide(r.guide, size), r.region.feather * max(size))
    return pad_edges(guide, margin, "replicate")


def _region_inputs(plan: Plan, size: Size, margin: int = 0) -> list[RegionInput]:
    """The regions at one scale: feathered guides (their edges repeated into the margin), and
    the global styles (if any) as one more region over what no region covers."""
    if not plan.regions:
        return []
    guides = [_guide_at(r, size, margin) for r in plan.regions]
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


def scale_targets(
    plan: Plan, sc: Scale, encoder, cache: RunCache, tile: int | None = None
) -> Targets:
    """The targets at scale ``sc``: the photo's features (the photo mirrored into the scale's
    margin) and the paintings' Grams, each from the cache when known; computed tile by tile
    (exactly, :class:`~impasto.tiles.TiledEncoder`) when ``tile`` is given."""
    network = encoder if tile is None else TiledEncoder(encoder, tile)
    size, margin = sc.size, sc.margin

    def content(layers: tuple[str, ...]) -> Targets:
        photo = pad_edges(resize(plan.content, size), margin).to(plan.device)
        return compute_targets(network, photo, layers, [], [])

    def style(layers: tuple[str, ...]) -> Targets:
        regions = _region_inputs(plan, size, margin)
        paintings = [] if plan.regions else [_style_at(st, plan, size) for st in plan.styles]
        return compute_targets(
            network,
            None,
            [],
            paintings,
            layers,
            [st.input.weight for st in plan.styles],
            style_layer_sets=[st.input.layers for st in plan.styles],
            regions=regions,
            propagation=plan.settings.guide_propagation,
        )

    net = network_key(plan.settings, plan.device, plan.dtype, plan.winograd)
    at = (*net, size, margin, tile)
    c = cache.content_targets((plan.content_key, at), plan.content_layers, content)
    st = cache.style_targets((plan.style_key, at), plan.style_layers, style)
    return Targets(c.content, st.grams, st.regions)


def scale_objective(plan: Plan, targets: Targets, sc: Scale, encoder) -> Objective:
    """The objective of scale ``sc``, ``image -> (total, components)`` (a 1-channel luminance
    image is expanded to the network's three channels by the objective itself).

    The loss scale (:mod:`impasto.balance`) sets the effective weights: ``paper`` keeps the raw
    eqs. (1)-(7); ``normalized`` divides each term by its target's magnitude. Departure
    (coarse-to-fine, paper scale only): eq. (1) sums over positions, so it grows with the pixel
    count while eq. (4) does not; alpha is scaled by (final area / this area) to keep the
    alpha/beta balance of the final size at every coarser scale.
    """
    s = plan.settings
    alpha = s.content_weight * balance.content_area_factor(s.loss_scale, plan.size, sc.size)
    content_w, style_w = balance.layer_weights(
        targets, s.loss_scale, plan.content_weights, plan.style_weights
    )
    tv = s.tv * balance.tv_factor(s.loss_scale, sc.canvas, plan.colors.channels)
    return Objective(encoder, targets, alpha, s.beta, content_w, style_w, tv)


def start_image(plan: Plan, sc: Scale) -> torch.Tensor:
    """The start image of scale ``sc``: its whole canvas, ``(1, channels, height, width)`` on
    the CPU, mirrored into the margin so that a seed gives the same start with or without one."""
    w, h = sc.size
    init = plan.settings.init
    if init == "noise":
        g = torch.Generator().manual_seed(plan.seed)
        noise = torch.randn((1, plan.colors.channels, h, w), generator=g)
        return pad_edges((noise * NOISE_STD + NOISE_MEAN).clamp(0, 1), sc.margin)
    if init == "content":
        img = resize(plan.content, sc.size)
    else:  # a painting or an image of any aspect ratio: its centre, not stretched
        img = resize(crop_to_aspect(_start_source(plan)[1], plan.size), sc.size)
    return plan.colors.start(pad_edges(img, sc.margin))


def _start_source(plan: Plan) -> tuple[str, torch.Tensor]:
    """The name and pixels of the image ``init`` names when it is neither noise nor the
    content: the init image, or for ``style`` the first painting (the first style given; with
    region styles only, the first region's)."""
    if plan.settings.init != "style":
        return plan.init_image.name, plan.init_image.rgb
    first = plan.styles[0] if plan.styles else next(r.style for r in plan.regions if r.style)
    return first.image.name, first.rgb


def note_cropped_start(plan: Plan, progress: Progress) -> None:
    """Say so when the start image is cropped to the output's aspect ratio (and which painting
    ``init style`` starts from when there are several)."""
    if plan.settings.init in ("noise", "content"):
        return
    name, rgb = _start_source(plan)
    h, w = rgb.shape[-2:]
    if crop_to_aspect(rgb, plan.size) is not rgb:
        ow, oh = plan.size
        progress.note(
            "init",
            f"start image {name} ({w}x{h} px) is cropped to its centre at the output's "
            f"aspect ratio ({ow}x{oh} px), not stretched",
            warning=True,
        )
    elif len(plan.styles) + sum(1 for r in plan.regions if r.style) > 1:
        progress.note("init", f"starting from the first painting, {name}")


def carry(x: torch.Tensor, old: Scale, new: Scale) -> torch.Tensor:
    """Scale ``old``'s result (image and margin) as the start of scale ``new``: resized so that
    the image lands on the new image and cropped to the new margin (the old margin, enlarged,
    is wider than the new one). Without margins, a plain :func:`~impasto.image.resize`."""
    if old.margin == new.margin == 0:
        return resize(x, new.size)
    sx, sy = new.size[0] / old.size[0], new.size[1] / old.size[1]
    left, top = round(old.margin * sx) - new.margin, round(old.margin * sy) - new.margin
    big = resize(x, (round(old.canvas[0] * sx), round(old.canvas[1] * sy)))
    # edges repeated where the new margin is wider than the old one enlarged (and one pixel
    # more, so that rounding never leaves the box short on the right or at the bottom)
    pad = max(0, -left, -top) + 1
    big = pad_edges(big, pad, "replicate")
    w, h = new.canvas
    return big[..., top + pad : top + pad + h, left + pad : left + pad + w]


def memory_budget(plan: Plan) -> tuple[int, str]:
    """The run's memory budget in bytes and where it comes from (``max_memory``, named
    :data:`~impasto.memory.BUDGET_SETTING` in the note, else what ``plan.device`` has):
    :func:`impasto.memory.device_budget`."""
    return device_budget(plan.settings.max_memory, plan.device)


def _styled_regions(plan: Plan) -> int:
    """Regions whose guides the objective keeps (the global styles count as one more)."""
    styled = sum(r.style is not None for r in plan.regions)
    return styled + (1 if plan.regions and plan.styles else 0)


def canvas_memory(
    settings: Settings,
    canvas: Size,
    budget: int,
    *,
    dtype: torch.dtype,
    winograd: bool,
    image_channels: int,
    layers: tuple[Sequence[str], Sequence[str]] | None = None,
    regions: int = 0,
    encoder: Any = None,
) -> MemoryPlan:
    """How a ``(width, height)`` canvas of a run with ``settings`` fits ``budget``
    (:func:`impasto.memory.plan_memory`): the whole image or tiles (``settings.tile`` forces
    tiles on canvases larger than one tile), and the optimiser's state. The engine's scales
    (:func:`scale_memory`) and the web server's check of a job before it is queued
    (:mod:`impasto.web.capacity`) both plan here.

    Args:
        dtype, winograd: the network's arithmetic and convolutions on the run's device.
        image_channels: channels optimised (:attr:`ColorPipeline.channels
            <impasto.color_pipeline.ColorPipeline.channels>`).
        layers: ``(content layers, style layers)`` in use (default: the settings').
        regions: styled regions (their guides are kept per style layer).
        encoder: the network (its layer names and channels); None: VGG19's.

    Raises:
        SettingsError: nothing fits (one line).
    """
    s, (w, h) = settings, canvas
    content, style = layers if layers is not None else (s.content_layers, s.style_layers)
    used = tuple(dict.fromkeys([*content, *style]))
    names = getattr(encoder, "names", LAYER_NAMES)
    return plan_memory(
        (h, w),
        layers=used,
        content_layers=content,
        regions=regions,
        pooling=s.pooling,
        dtype=dtype,
        winograd=winograd,
        optimizer=s.optimizer,
        history=s.lbfgs_history,
        budget=budget,
        halo=required_halo(used, names),
        align=alignment(used),
        image_channels=image_channels,
        tile=s.tile if s.tile and max(w, h) > s.tile else None,
        names=names,
        channels=getattr(encoder, "channels", layer_channels),
    )


def scale_memory(plan: Plan, k: int, encoder, budget: int) -> MemoryPlan:
    """How scale ``k`` fits ``budget``: :func:`canvas_memory` of its canvas with the plan's
    device, colours, layers and regions."""
    return canvas_memory(
        plan.settings,
        plan.scales[k].canvas,
        budget,
        dtype=plan.dtype,
        winograd=plan.winograd,
        image_channels=plan.colors.channels,
        layers=(plan.content_layers, plan.style_layers),
        regions=_styled_regions(plan),
        encoder=encoder,
    )


def _record(progress: Progress, plan: Plan, k: int, mem: MemoryPlan) -> None:
    """Log the scale's memory plan (a warning when it changes the optimiser asked for) and keep
    it for the result's metadata."""
    s = plan.settings
    changed = mem.optimizer != s.optimizer or (
        mem.optimizer == "lbfgs" and mem.history != s.lbfgs_history
    )
    progress.note("memory", mem.reason, warning=changed)
    w, h = plan.scales[k].size
    progress.memory.append(
        {
            "scale": k,
            "size": [w, h],
            "tile": mem.tile,
            "halo": mem.halo,
            "optimizer": mem.optimizer,
            "history": mem.history,
        }
    )


def evaluator(objective: Objective, mem: MemoryPlan, progress: Progress, k: int):
    """How scale ``k``'s objective is evaluated: whole, or exact tiles reporting each tile."""
    if mem.tile is None:
        return objective

    def on_tile(phase: int, i: int, n: int) -> None:
        progress.tile(k, phase, i, n)

    return TiledObjective(objective, mem.tile, mem.halo, on_tile=on_tile)


def note_upscaled_paintings(plan: Plan, progress: Progress) -> None:
    """Warn once per painting that the final scale enlarges past its own resolution (its
    texture is then magnified and soft): the style scale asks for more pixels than it has."""
    sources = [*plan.styles, *(r.style for r in plan.regions if r.style is not None)]
    for src in sources:
        sw, sh = src.image.size
        side = round(max(plan.size) * src.scale(plan.settings))
        if side > max(sw, sh) * 1.01:
            fits = max(sw, sh) / max(plan.size)
            progress.note(
                "upscale",
                f"painting {src.image.name} ({sw}x{sh} px) is enlarged {side / max(sw, sh):.1f}x "
                f"to {side} px for style scale {src.scale(plan.settings):g} at this size; its "
                f"strokes will be magnified and soft (a style scale of {fits:.2g} or a larger "
                "scan avoids it)",
                warning=True,
            )


@dataclass
class Checkpoints:
    """Where and when a run saves its state.

    Args:
        autosave: the checkpoint file and the period (:class:`impasto.checkpoint.Autosave`);
            its ``meta`` is stored in each checkpoint (e.g. the command line that resumes it).
        inputs: identities of the inputs (:func:`impasto.checkpoint.input_identities`).
    """

    autosave: Autosave
    inputs: dict[str, dict] = field(default_factory=dict)

    def write(self, plan: Plan, progress: Progress, k: int, i: int, state, mem: MemoryPlan):
        """Save iteration ``i`` of scale ``k`` (``state()``: the descent's state) now."""
        self.autosave.save(
            lambda: Checkpoint(
                settings=plan.settings.resolved(),
                seed=plan.seed,
                level=k,
                iteration=i,
                descent=state(),
                rng=rng_state(),
                inputs=self.inputs,
                extra={
                    "progress": progress.state(),
                    "memory_plan": dataclasses.asdict(mem),
                    "caller": self.autosave.meta,
                },
            )
        )


def check_resume(plan: Plan, ckpt: Checkpoint) -> None:
    """Refuse a checkpoint of another run: other settings (the memory budget aside), another
    seed, or a scale this run does not have."""
    mine, theirs = plan.settings.resolved(), resolve_weights(ckpt.settings)
    for key in sorted(set(mine) | set(theirs)):
        if key != "max_memory" and _plain(mine.get(key)) != _plain(theirs.get(key)):
            raise CheckpointError(
                f"{key}: the checkpoint was made with {theirs.get(key)!r}, this run has "
                f"{mine.get(key)!r}"
            )
    if ckpt.seed != plan.seed:
        raise CheckpointError(f"the checkpoint was made with seed {ckpt.seed}, not {plan.seed}")
    if not 0 <= ckpt.level < len(plan.scales):
        raise CheckpointError(f"the checkpoint is at pyramid level {ckpt.level}, not in this run")


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


@dataclass
class _Run:
    plan: Plan
    cache: RunCache
    progress: Progress
    cancel: threading.Event | None
    budget: int
    checkpoints: Checkpoints | None = None
    resume: Checkpoint | None = None

    def savers(self, k: int, mem: MemoryPlan) -> tuple:
        """``(snapshot, on_interrupt)`` for :func:`impasto.optimise.optimise` at scale ``k``.
        Besides the timed saves, a run that has a checkpoint (one it wrote, or the one it
        resumed) brings it to the finished state at its last iteration, so that resuming a
        finished run writes the result without optimising again."""
        ck = self.checkpoints
        if ck is None:
            return None, None
        end = self.plan.scales[k].iterations if k == len(self.plan.scales) - 1 else None

        def write(i: int, state) -> None:
            ck.write(self.plan, self.progress, k, i, state, mem)

        def snapshot(i: int, state) -> None:
            has_one = ck.autosave.saved > 0 or self.resume is not None
            if ck.autosave.due() or (i == end and has_one):
                write(i, state)

        return snapshot, write


def run_scale(run: _Run, k: int, x: torch.Tensor | None) -> torch.Tensor:
    """Optimise scale ``k`` from ``x`` (the previous scale's result, or None for the first)."""
    plan, progress = run.plan, run.progress
    s, sc = plan.settings, plan.scales[k]
    layers = [*plan.content_layers, *plan.style_layers]
    encoder = run.cache.encoder(s, plan.device, plan.dtype, layers, winograd=plan.winograd)
    resumed = run.resume if run.resume is not None and run.resume.level == k else None
    if resumed is not None:  # the checkpoint's plan, so that the run continues exactly
        mem = MemoryPlan(**resumed.extra["memory_plan"])
    else:
        mem = scale_memory(plan, k, encoder, run.budget)
    _record(progress, plan, k, mem)
    targets = scale_targets(plan, sc, encoder, run.cache, mem.tile)
    objective = scale_objective(plan, targets, sc, encoder)
    if resumed is not None:
        x = resumed.descent["x"]
    elif x is None:
        x = start_image(plan, sc)
    else:
        x = carry(x, plan.scales[k - 1], sc)
    # Another optimiser than asked (memory): its own default step size.
    lr = (
        s.lr
        if mem.optimizer == s.optimizer
        else s.replace(optimizer=mem.optimizer, learning_rate=None).lr
    )
    snapshot, on_interrupt = run.savers(k, mem)
    x = optimise(
        x.to(plan.device),
        evaluator(objective, mem, progress, k),
        iterations=sc.iterations,
        optimizer=mem.optimizer,
        lr=lr,
        history_size=mem.history or s.lbfgs_history,
        ema_decay=s.ema_decay,
        on_step=lambda i, img, parts, total: progress.step(k, i, img, parts, total),
        cancel=run.cancel,
        resume=None if resumed is None else resumed.descent,
        snapshot=snapshot,
        on_interrupt=on_interrupt,
    )
    progress.scale_done(sc)
    return x


def run_pyramid(
    plan: Plan,
    cache: RunCache,
    progress: Progress,
    cancel: threading.Event | None = None,
    *,
    checkpoints: Checkpoints | None = None,
    resume: Checkpoint | None = None,
) -> torch.Tensor:
    """All scales, coarsest first; returns the final image ``(1, channels, H, W)``.

    Args:
        checkpoints: save the state periodically, on Ctrl-C and on cancel.
        resume: continue from this checkpoint (its settings and seed must be the plan's).
    """
    check_regions_reach_the_layers(plan)
    budget, source = memory_budget(plan)
    progress.note("memory", f"memory budget {format_bytes(budget)} ({source})")
    note_upscaled_paintings(plan, progress)
    note_cropped_start(plan, progress)
    first = 0
    if resume is not None:
        check_resume(plan, resume)
        restore_rng(resume.rng)
        progress.restore(resume.extra["progress"], resume.level, resume.iteration)
        first = resume.level
    run = _Run(plan, cache, progress, cancel, budget, checkpoints, resume)
    x = None
    for k in range(first, len(plan.scales)):
        x = run_scale(run, k, x)
    return crop_edges(x, plan.scales[-1].margin)
