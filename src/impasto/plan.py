"""Stage 1 of a run: everything decided before the first iteration, validated once.

:func:`make_plan` loads the inputs (through a :class:`~impasto.cache.RunCache`), checks that
they fit the settings, applies the colour mode's pre-processing, picks the layers and weights in
use and the scales of the pyramid, and returns a :class:`Plan`. Nothing after it re-validates.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .cache import RunCache
from .choices import INITS
from .color_pipeline import ColorPipeline
from .devices import resolve_device, resolve_dtype
from .encoder.winograd import resolve_winograd
from .errors import SettingsError
from .image import LoadedImage, check_image_source, load_image
from .inputs import resolve_input
from .layers import deepest, layer_stride
from .objective import normalized_weights
from .regions import Region
from .schedule import Scale, scales_of
from .settings import Settings, StyleInput

__all__ = [
    "Plan",
    "StyleSource",
    "RegionSource",
    "make_plan",
    "as_styles",
    "as_regions",
    "check_size",
]


@dataclass(frozen=True)
class StyleSource:
    """A painting: how it was asked for, the decoded file, and the RGB the network sees."""

    input: StyleInput
    image: LoadedImage
    rgb: torch.Tensor

    def scale(self, settings: Settings) -> float:
        """Its long side relative to the output's."""
        return self.input.scale if self.input.scale is not None else settings.style_scale


@dataclass(frozen=True)
class RegionSource:
    """A region: its settings, its guide at the mask's size, and its painting (if styled)."""

    region: Region
    guide: torch.Tensor
    style: StyleSource | None


@dataclass(frozen=True)
class Plan:
    """A validated run, ready for the pyramid (:mod:`impasto.pyramid`).

    Attributes:
        settings: the settings.
        seed: the random seed in use (drawn when the settings give none).
        device, dtype: where and in what arithmetic the network runs.
        winograd: whether its large convolutions run by Winograd (``settings.conv`` resolved).
        colors: the colour mode's pre- and post-processing.
        photo: the decoded content image (None for texture synthesis).
        content: the photo as the network sees it (after the colour mode), or None.
        styles: the global paintings.
        regions: the regions (spatial control).
        init_image: the decoded ``init`` image when ``settings.init`` is a path.
        content_layers, style_layers: the layers in use (empty when a term is off).
        content_weights, style_weights: ``{layer: weight}`` of eqs. (1) and (5).
        scales: the pyramid, coarsest first.
        content_key, style_key: what the content and the style targets depend on (for the
            cache; see :func:`_cache_keys`).
    """

    settings: Settings
    seed: int
    device: torch.device
    dtype: torch.dtype
    winograd: bool
    colors: ColorPipeline
    photo: LoadedImage | None
    content: torch.Tensor | None
    styles: tuple[StyleSource, ...]
    regions: tuple[RegionSource, ...]
    init_image: LoadedImage | None
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    content_weights: dict[str, float]
    style_weights: dict[str, float]
    scales: tuple[Scale, ...]
    content_key: Hashable
    style_key: Hashable

    @property
    def size(self) -> tuple[int, int]:
        """The output's ``(width, height)``."""
        return self.scales[-1].size

    @property
    def total_steps(self) -> int:
        """Iterations over the whole pyramid."""
        return sum(sc.iterations for sc in self.scales)


def as_styles(styles: Any) -> list[StyleInput]:
    """One style (path, PIL image, :class:`StyleInput`) or a sequence of them -> a list."""
    if styles is None:
        return []
    if isinstance(styles, (StyleInput, str, bytes, Image.Image)) or hasattr(styles, "__fspath__"):
        styles = [styles]
    if hasattr(styles, "shape") or not isinstance(styles, Iterable):  # a tensor, an array...
        check_image_source(styles, "a style")
    return [s if isinstance(s, StyleInput) else StyleInput(s) for s in styles]


def as_regions(regions: Any) -> list[Region]:
    """One :class:`Region` or a sequence of them -> a list (anything else is an error)."""
    if regions is None:
        return []
    out = [regions] if isinstance(regions, Region) else list(regions)
    bad = [r for r in out if not isinstance(r, Region)]
    if bad:
        raise SettingsError(f"regions must be impasto.regions.Region objects, got {type(bad[0])}")
    return out


def _check_inputs(s: Settings, content: Any, styles: list[StyleInput], regions: list[Region]):
    if content is not None:
        check_image_source(content, "the content image")
    for si in [*styles, *(r.style for r in regions if r.styled)]:
        check_image_source(si.image, "a style image")
    if content is None and not styles:
        raise SettingsError("nothing to do: give a content image, a style image, or both")
    if regions and content is None:
        raise SettingsError("regions need a content image")
    if s.init == "content" and content is None:
        raise SettingsError("init: 'content' needs a content image")
    if s.init == "style" and not styles and not any(r.styled for r in regions):
        raise SettingsError("init: 'style' needs a style image")
    for si in [*styles, *(r.style for r in regions if r.styled)]:
        extra = sorted(set(si.layers or ()) - set(s.style_layers))
        if extra:
            raise SettingsError(
                f"style layer(s) {', '.join(extra)} of a style image are not among the "
                f"style layers ({', '.join(s.style_layers)})"
            )


def _init_image(s: Settings) -> LoadedImage | None:
    """The start image named by ``init`` when it is a path; a missing file is a settings error
    listing the built-in starts (the likely intent of a typo such as ``contnet``)."""
    if s.init_path is None:
        return None
    path = Path(resolve_input(s.init))  # example:NAME, as every other input takes
    if not path.exists():
        raise SettingsError(
            f"init: {s.init!r} is neither one of {', '.join(INITS)} nor an existing image file"
        )
    return load_image(path, max_pixels=s.max_input_pixels)


def _check_aspect(guide: torch.Tensor, photo: LoadedImage, name: str | None) -> None:
    """Masks must have the content's aspect ratio (within 2 %): they are stretched to it."""
    gh, gw = guide.shape[-2:]
    cw, ch = photo.size
    if abs((gw / gh) / (cw / ch) - 1) > 0.02:
        raise SettingsError(
            f"mask {name} is {gw}x{gh} px but the content is {cw}x{ch} px; "
            "a mask must have the content's aspect ratio"
        )


def _layers(s: Settings, has_content: bool, has_style: bool) -> tuple[tuple, tuple]:
    content_layers = s.content_layers if has_content and s.content_weight > 0 else ()
    style_layers = s.style_layers if has_style and s.beta > 0 else ()
    if not content_layers and not style_layers:
        raise SettingsError("both loss terms are off: set a content or style weight above 0")
    return content_layers, style_layers


def _scales(s: Settings, aspect: tuple[int, int], deepest_layer: str) -> tuple[Scale, ...]:
    """The pyramid; levels too small for the deepest layer's pooling are skipped, and a final
    size too small for it is an error naming the size."""
    scales = scales_of(s, aspect)
    need = layer_stride(deepest_layer)
    if s.tile and s.tile < need:  # it was raised to one stride: tiny tiles, each with a halo
        raise SettingsError(
            f"tile: at least {need} px, the stride of layer {deepest_layer} (tiles are "
            f"multiples of it), or 0 to choose tiles from the memory budget; got {s.tile}"
        )
    w, h = scales[-1].size
    if min(w, h) < need:
        raise SettingsError(
            f"size: {s.size} gives a {w}x{h} px image at this aspect ratio, too small for "
            f"layer {deepest_layer} (needs at least {need} px on the short side)"
        )
    return tuple([sc for sc in scales[:-1] if min(sc.size) >= need] + [scales[-1]])


def _check_roles(s: Settings, has_content: bool, n_styles: int, has_regions: bool) -> None:
    """What the inputs given can do: a colour mode needs its images, and a style weight with
    no painting and no region has nothing to weigh (as the CLI says)."""
    ColorPipeline(s.preserve_colors, s.color_match).check(has_content, n_styles)
    if has_content and not n_styles and not has_regions and s.beta and s.content_weight:
        raise SettingsError(
            "give at least one style image or region (or style_weight 0: a content reconstruction)"
        )


def check_size(s: Settings, aspect: tuple[int, int], *, has_content: bool, has_style: bool) -> None:
    """The checks :func:`make_plan` makes of the inputs' roles and of the output size, for a
    caller that knows only which images there are and their size (the web studio, before it
    queues a job).

    Raises:
        SettingsError: a photo with no painting and a style weight, a colour mode without the
            images it needs, both loss terms off, or ``s.size`` too small at ``aspect`` for the
            deepest layer in use.
    """
    _check_roles(s, has_content, int(has_style), False)
    content_layers, style_layers = _layers(s, has_content, has_style)
    _scales(s, aspect, deepest([*content_layers, *style_layers]))


def _weights(s: Settings, content_layers, style_layers) -> tuple[dict, dict]:
    cw = normalized_weights(s.content_layer_weights, len(content_layers))
    n = max(1, len(style_layers))
    sw = s.style_layer_weights or [1.0 / n] * len(style_layers)
    return dict(zip(content_layers, cw)), dict(zip(style_layers, sw))


def _cache_keys(cache: RunCache, s: Settings, content: Any, styles, regions) -> tuple:
    """What the content targets and the style targets depend on (besides size and layers).

    The paintings' Grams do not depend on the photo, so they are reused across photos, except
    where a colour mode makes them (histogram: recoloured to the photo; luminance: matched to
    its luminance). The photo's features depend on the first painting in histogram-reverse.
    """
    mode = (s.preserve_colors, s.color_match)
    style_key = (
        tuple((cache.key(si.image), si.weight, si.scale, si.layers) for si in styles),
        tuple(
            (
                cache.key(r.mask),
                r.weight,
                r.feather,
                None
                if r.style is None
                else (cache.key(r.style.image), r.style.scale, r.style.layers),
            )
            for r in regions
        ),
        s.style_scale,
        s.guide_propagation,
    )
    photo = cache.key(content)
    needs_photo = s.preserve_colors in ("histogram", "luminance")
    changes_photo = s.preserve_colors in ("luminance", "histogram-reverse")
    # histogram-reverse matches the photo to the first painting: a region's when no global one
    paintings = [*(si.image for si in styles), *(r.style.image for r in regions if r.style)]
    first = cache.key(paintings[0]) if s.preserve_colors == "histogram-reverse" else None
    content_key = (mode if changes_photo else None, photo, first)
    return content_key, (mode, style_key, photo if needs_photo else None)


def make_plan(settings: Settings, content: Any, styles: Any, regions: Any, cache: RunCache) -> Plan:
    """Load and validate everything a run needs (see the module docstring)."""
    s = settings
    style_inputs, region_list = as_styles(styles), as_regions(regions)
    _check_inputs(s, content, style_inputs, region_list)
    colors = ColorPipeline(s.preserve_colors, s.color_match)
    styled = [r for r in region_list if r.styled]
    _check_roles(s, content is not None, len(style_inputs) + len(styled), bool(region_list))
    limit = s.max_input_pixels
    photo = cache.image(content, limit) if content is not None else None
    paintings = [cache.image(si.image, limit) for si in [*style_inputs, *(r.style for r in styled)]]
    guides = [cache.guide(r.mask) for r in region_list]
    for r, g in zip(region_list, guides):
        _check_aspect(g, photo, r.name)
    content_rgb, rgbs = colors.prepare(photo.rgb if photo else None, [p.rgb for p in paintings])
    sources = [
        StyleSource(si, p, rgb)
        for si, p, rgb in zip([*style_inputs, *(r.style for r in styled)], paintings, rgbs)
    ]
    region_styles = iter(sources[len(style_inputs) :])
    region_sources = tuple(
        RegionSource(r, g, next(region_styles) if r.styled else None)
        for r, g in zip(region_list, guides)
    )
    content_layers, style_layers = _layers(s, content_rgb is not None, bool(sources))
    device = resolve_device(s.device)
    dtype = resolve_dtype(s.network_precision, device)
    keys = _cache_keys(cache, s, content, style_inputs, region_list)
    return Plan(
        settings=s,
        seed=s.seed if s.seed is not None else random.SystemRandom().randrange(2**31),
        device=device,
        dtype=dtype,
        winograd=resolve_winograd(s.conv, device, dtype),
        colors=colors,
        photo=photo,
        content=content_rgb,
        styles=tuple(sources[: len(style_inputs)]),
        regions=region_sources,
        init_image=_init_image(s),
        content_layers=content_layers,
        style_layers=style_layers,
        content_weights=_weights(s, content_layers, style_layers)[0],
        style_weights=_weights(s, content_layers, style_layers)[1],
        scales=_scales(s, (photo or paintings[0]).size, deepest([*content_layers, *style_layers])),
        content_key=keys[0],
        style_key=keys[1],
    )
