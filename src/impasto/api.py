"""The public entry points: :func:`stylize`, :func:`reconstruct_content`, :func:`reconstruct_style`
and the :class:`Stylizer` that runs the whole pipeline.

Data flow: path -> :func:`impasto.image.load_image` -> RGB [0, 1] tensors -> (colour
pre-processing, :func:`prepare_colors`) -> per scale: resize, region guides, targets (once, or
reused from a :class:`RunCache`), objective, optimiser loop -> callbacks -> (colour
post-processing, alpha restored) -> :class:`Result`.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from . import __version__, color
from .callbacks import Callback, Iterate
from .devices import resolve_device, resolve_dtype
from .encoder import LAYER_NAMES, deepest, load_encoder
from .errors import SettingsError
from .image import LoadedImage, fit_long_side, load_image, resize, save_image, to_pil
from .layers import layer_stride
from .objective import Objective, RegionInput, Targets, compute_targets, normalized_weights
from .optimise import optimise
from .regions import (
    PROPAGATIONS,
    Region,
    background_guide,
    feather_guide,
    load_guide,
    resize_guide,
)
from .schedule import plan_scales
from .settings import Settings, StyleInput

__all__ = [
    "Result",
    "RunCache",
    "Stylizer",
    "prepare_colors",
    "stylize",
    "reconstruct_content",
    "reconstruct_style",
]

METADATA_KEY = "impasto"

# Gaussian white noise around mid-grey for the "noise" start (std in [0, 1] pixel units).
NOISE_MEAN, NOISE_STD = 0.5, 0.2


@dataclass
class Result:
    """The outcome of a run.

    Attributes:
        image: ``(1, 3, H, W)`` float32 RGB in [0, 1], on the CPU.
        alpha: ``(1, 1, H, W)`` alpha restored from the content image, or None.
        settings: the settings used.
        seed: the random seed used.
        elapsed: wall time of the run in seconds.
        inputs: names of the content and style images.
        history: per-iteration records (step, scale, elapsed, loss and components).
    """

    image: torch.Tensor
    alpha: torch.Tensor | None
    settings: Settings
    seed: int
    elapsed: float
    inputs: dict[str, Any] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    @property
    def metadata(self) -> dict[str, str]:
        """Text metadata embedded in saved files: settings, seed, inputs, version."""
        info = {
            "version": __version__,
            "seed": self.seed,
            "inputs": self.inputs,
            "settings": {**self.settings.to_dict(), "seed": self.seed},
            "elapsed_s": round(self.elapsed, 2),
        }
        return {
            METADATA_KEY: json.dumps(info, sort_keys=True),
            "Software": f"impasto {__version__}",
        }

    def to_pil(self) -> Image.Image:
        """8-bit PIL image (RGBA when the content had alpha)."""
        return to_pil(self.image, self.alpha)

    def save(self, path, *, bits: int = 8, quality: int = 95) -> None:
        """Write atomically, format by extension, with the settings in the metadata."""
        save_image(
            self.image, path, alpha=self.alpha, bits=bits, metadata=self.metadata, quality=quality
        )


def _as_styles(styles: Any) -> list[StyleInput]:
    if styles is None:
        return []
    if isinstance(styles, (StyleInput, str, Image.Image)) or hasattr(styles, "__fspath__"):
        styles = [styles]
    return [s if isinstance(s, StyleInput) else StyleInput(s) for s in styles]


def _as_regions(regions: Any) -> list[Region]:
    if regions is None:
        return []
    if isinstance(regions, Region):
        regions = [regions]
    out = list(regions)
    bad = [r for r in out if not isinstance(r, Region)]
    if bad:
        raise SettingsError(f"regions must be impasto.regions.Region objects, got {type(bad[0])}")
    return out


def _gray3(y: torch.Tensor) -> torch.Tensor:
    return y.expand(-1, 3, -1, -1)


def _scale_of(si: StyleInput, s: Settings) -> float:
    return si.scale if si.scale is not None else s.style_scale


def _check_aspect(guide: torch.Tensor, photo: LoadedImage | None, name: str | None) -> None:
    """Masks must have the content's aspect ratio (within 2 %): they are stretched to it."""
    if photo is None:
        return
    gh, gw = guide.shape[-2:]
    cw, ch = photo.size
    if abs((gw / gh) / (cw / ch) - 1) > 0.02:
        raise SettingsError(
            f"mask {name} is {gw}x{gh} px but the content is {cw}x{ch} px; "
            "a mask must have the content's aspect ratio"
        )


def _layer_set(si: StyleInput) -> tuple[str, ...] | None:
    """The style layers a painting covers (coarse/fine mixing), or None for all of them."""
    layers = getattr(si, "layers", None)
    return tuple(layers) if layers is not None else None


def prepare_colors(
    mode: str, content: torch.Tensor | None, styles: Sequence[torch.Tensor]
) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """The colour pre-processing of a run (Gatys et al. 2017, section 5; arXiv:1606.05897).

    Args:
        mode: ``Settings.preserve_colors``: ``none`` and ``swap`` change nothing here (``swap``
            acts after the run); ``histogram`` gives every painting the photo's mean colour and
            colour covariance; ``histogram-reverse`` gives the photo the first painting's;
            ``luminance`` turns photo and paintings into their YIQ luminance (as three equal
            channels) with each painting's luminance mean/std matched to the photo's.
        content: ``(1, 3, H, W)`` photo, or None.
        styles: ``(1, 3, h, w)`` paintings.

    Returns:
        ``(content, styles)`` as the network will see them.
    """
    styles = list(styles)
    if mode != "none" and content is None:
        raise SettingsError("colour preservation needs a content image")
    if mode in ("histogram", "luminance", "histogram-reverse") and not styles:
        raise SettingsError(f"preserve colors '{mode}' needs a style image")
    if mode == "histogram":
        styles = [color.match_color(r, content) for r in styles]
    elif mode == "histogram-reverse":
        content = color.match_color(content, styles[0])
    elif mode == "luminance":
        content_y = color.luminance(content)
        styles = [_gray3(color.match_luminance(color.luminance(r), content_y)) for r in styles]
        content = _gray3(content_y)
    return content, styles


def _style_at(rgb: torch.Tensor, scale: float, size: tuple[int, int]) -> torch.Tensor:
    """A painting resized so its long side is ``scale`` x the output's (short side >= 16 px)."""
    w, h = size
    sw, sh = rgb.shape[-1], rgb.shape[-2]
    side = max(16, round(max(w, h) * scale), math.ceil(16 * max(sw, sh) / min(sw, sh)))
    return resize(rgb, fit_long_side((sw, sh), side))


class RunCache:
    """Work that several runs can share: decoded images, encoders and per-scale targets.

    Pass one to :meth:`Stylizer.run` (``cache=``) for runs that differ only in weights, layer
    choice or other settings that targets do not depend on (``impasto sweep`` does): each
    target is computed once. Targets are keyed by everything they depend on (sizes, inputs,
    colour mode, style scales, regions, network) and computed for the union of the layers asked
    for and ``content_layers``/``style_layers`` given here, so later runs asking for a subset
    reuse them. Inputs given as PIL images or tensors are keyed by identity (the cache keeps a
    reference); paths by absolute path, size and modification time.

    Attributes:
        stats: counters ``images_loaded``, ``encoders_built``, ``targets_computed``,
            ``targets_reused``.
    """

    def __init__(self, content_layers: Sequence[str] = (), style_layers: Sequence[str] = ()):
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.stats = dict.fromkeys(
            ("images_loaded", "encoders_built", "targets_computed", "targets_reused"), 0
        )
        self._images: dict[Hashable, LoadedImage] = {}
        self._guides: dict[Hashable, torch.Tensor] = {}
        self._encoders: dict[Hashable, Any] = {}
        self._targets: dict[Hashable, Targets] = {}
        self._kept: dict[int, Any] = {}

    def key(self, source: Any) -> Hashable:
        """A hashable identity of an input (path or object)."""
        if source is None:
            return None
        if isinstance(source, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(source))
            try:
                st = os.stat(path)
            except OSError:
                return ("path", path)
            return ("path", path, st.st_size, st.st_mtime_ns)
        self._kept[id(source)] = source
        return ("object", id(source))

    def image(self, source: Any) -> LoadedImage:
        """:func:`impasto.image.load_image`, once per input."""
        k = self.key(source)
        if k not in self._images:
            self._images[k] = load_image(source)
            self.stats["images_loaded"] += 1
        return self._images[k]

    def guide(self, source: Any) -> torch.Tensor:
        """:func:`impasto.regions.load_guide`, once per input."""
        k = self.key(source)
        if k not in self._guides:
            self._guides[k] = load_guide(source)
        return self._guides[k]

    def encoder(self, s: Settings, device: torch.device, dtype: torch.dtype, layers: Sequence[str]):
        """A VGG19 encoder deep enough for ``layers`` (and this cache's extra layers)."""
        k = (s.pooling, s.weights, s.weights_format, str(device), dtype)
        need = deepest([*layers, *self.content_layers, *self.style_layers])
        enc = self._encoders.get(k)
        if enc is None or LAYER_NAMES.index(enc.last) < LAYER_NAMES.index(need):
            enc = load_encoder(
                s.pooling,
                device=device,
                dtype=dtype,
                last=need,
                weights=s.weights,
                weights_format=s.weights_format,
            )
            self._encoders[k] = enc
            self.stats["encoders_built"] += 1
        return enc

    def targets(
        self,
        key: Hashable,
        content_layers: Sequence[str],
        style_layers: Sequence[str],
        compute: Callable[[tuple[str, ...], tuple[str, ...]], Targets],
    ) -> Targets:
        """The targets for ``key``, computed by ``compute(content_layers, style_layers)`` for the
        union of the layers asked for and this cache's extra layers, unless already known."""
        cl = tuple(dict.fromkeys([*content_layers, *self.content_layers]))
        sl = tuple(dict.fromkeys([*style_layers, *self.style_layers]))
        known = self._targets.get(key)
        if known is not None:
            have_cl, have_sl, t = known
            if set(content_layers) <= have_cl and set(style_layers) <= have_sl:
                self.stats["targets_reused"] += 1
                return t
            cl = tuple(dict.fromkeys([*cl, *have_cl]))
            sl = tuple(dict.fromkeys([*sl, *have_sl]))
        t = compute(cl, sl)
        self._targets[key] = (set(cl), set(sl), t)
        self.stats["targets_computed"] += 1
        return t


class Stylizer:
    """Runs style transfer (or a reconstruction) with fixed :class:`Settings`.

    >>> s = Stylizer(Settings(size=64, iterations=2))                # doctest: +SKIP
    >>> result = s.run("photo.jpg", ["painting.jpg"], callback=print)  # doctest: +SKIP
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        base = settings or Settings()
        self.settings = base.replace(**overrides) if overrides else base

    def run(
        self,
        content: Any,
        styles: Any = (),
        *,
        regions: Any = None,
        guide_propagation: str = "area",
        callback: Callback | None = None,
        cancel: threading.Event | None = None,
        cache: RunCache | None = None,
    ) -> Result:
        """Optimise an image.

        Args:
            content: path or PIL image of the photo, or None for texture synthesis (style only).
            styles: one style (path, PIL image or :class:`StyleInput`) or a sequence of them
                (blended); may be empty for a content reconstruction or when ``regions`` give
                the styles. With ``regions``, these paint only what no region covers.
            regions: :class:`impasto.regions.Region` objects (spatial control, Gatys et al.
                2017 section 4): each paints its guide's part of the image in its own style, or
                leaves it unstyled.
            guide_propagation: how region guides reach each layer, ``"area"`` or ``"inside"``
                (see :func:`impasto.regions.propagate_guide`).
            callback: called with an :class:`Iterate` after every iteration.
            cancel: an event that stops the run (raising :class:`impasto.errors.Cancelled`).
            cache: a :class:`RunCache` to share decoded images, the encoder and targets with
                other runs.
        """
        s = self.settings
        t0 = time.perf_counter()
        cache = cache if cache is not None else RunCache()
        style_inputs = _as_styles(styles)
        region_list = _as_regions(regions)
        styled = [r for r in region_list if r.styled]
        if content is None and not style_inputs:
            raise SettingsError("nothing to do: give a content image, a style image, or both")
        if region_list and content is None:
            raise SettingsError("regions need a content image")
        if guide_propagation not in PROPAGATIONS:
            raise SettingsError(f"guide propagation must be one of {', '.join(PROPAGATIONS)}")
        all_inputs = [*style_inputs, *(r.style for r in styled)]
        for si in all_inputs:
            extra = sorted(set(_layer_set(si) or ()) - set(s.style_layers))
            if extra:
                raise SettingsError(
                    f"style layer(s) {', '.join(extra)} of a style image are not among the "
                    f"style layers ({', '.join(s.style_layers)})"
                )
        device = resolve_device(s.device)
        dtype = resolve_dtype(s.precision, device)
        seed = s.seed if s.seed is not None else random.SystemRandom().randrange(2**31)

        photo: LoadedImage | None = cache.image(content) if content is not None else None
        paintings = [cache.image(si.image) for si in all_inputs]
        init_img = load_image(s.init_path) if s.init_path is not None else None
        guides = [cache.guide(r.mask) for r in region_list]
        for r, g in zip(region_list, guides):
            _check_aspect(g, photo, r.name)

        mode = s.preserve_colors
        content_rgb, all_rgbs = prepare_colors(
            mode, photo.rgb if photo is not None else None, [p.rgb for p in paintings]
        )
        style_rgbs, region_rgbs = all_rgbs[: len(style_inputs)], all_rgbs[len(style_inputs) :]

        aspect_src = photo.size if photo is not None else paintings[0].size
        scales = plan_scales(
            aspect_src,
            s.size,
            s.iterations,
            s.pyramid_start,
            s.pyramid_iterations,
            s.pyramid_factor,
        )
        content_layers = (
            s.content_layers if content_rgb is not None and s.content_weight > 0 else ()
        )
        style_layers = s.style_layers if all_rgbs and s.style_weight > 0 else ()
        if not content_layers and not style_layers:
            raise SettingsError("both loss terms are off: set a content or style weight above 0")
        # Pyramid levels too small for the deepest layer's pooling are skipped (the full size, if
        # too small, still fails with the encoder's clear error).
        need = layer_stride(deepest([*content_layers, *style_layers]))
        scales = [sc for sc in scales[:-1] if min(sc.size) >= need] + [scales[-1]]
        encoder = cache.encoder(s, device, dtype, [*content_layers, *style_layers])
        cl_w = dict(
            zip(content_layers, normalized_weights(s.content_layer_weights, len(content_layers)))
        )
        sl_w = dict(
            zip(
                style_layers,
                s.style_layer_weights or [1.0 / max(1, len(style_layers))] * len(style_layers),
            )
        )
        blend = [si.weight for si in style_inputs]
        global_sets = [_layer_set(si) for si in style_inputs]
        channels = 1 if mode == "luminance" else 3
        total_steps = sum(sc.iterations for sc in scales)
        # Work per scale ~ iterations x pixels: progress and ETA weight steps by it.
        work = [sc.iterations * sc.size[0] * sc.size[1] for sc in scales]
        work_before = [sum(work[:k]) for k in range(len(work))]
        total_work = max(1, sum(work))
        history: list[dict] = []
        done = 0
        x: torch.Tensor | None = None
        inputs_key = (
            mode,
            s.style_scale,
            guide_propagation,
            cache.key(content),
            tuple(
                (cache.key(si.image), si.weight, si.scale, _layer_set(si)) for si in style_inputs
            ),
            tuple(
                (
                    cache.key(r.mask),
                    r.weight,
                    r.feather,
                    None
                    if r.style is None
                    else (cache.key(r.style.image), r.style.scale, _layer_set(r.style)),
                )
                for r in region_list
            ),
            (s.pooling, s.weights, s.weights_format, str(device), dtype),
        )

        for k, sc in enumerate(scales):
            w, h = sc.size
            c_s = resize(content_rgb, (w, h)).to(device) if content_rgb is not None else None
            st_s = [
                _style_at(rgb, _scale_of(si, s), (w, h)).to(device)
                for si, rgb in zip(style_inputs, style_rgbs)
            ]
            rs_s = [
                _style_at(rgb, _scale_of(r.style, s), (w, h)).to(device)
                for r, rgb in zip(styled, region_rgbs)
            ]

            def compute(cl, sl, _c=c_s, _st=st_s, _rs=rs_s, _size=(w, h)) -> Targets:
                region_inputs = self._region_inputs(
                    region_list, guides, _rs, _st, blend, global_sets, _size, device
                )
                return compute_targets(
                    encoder,
                    _c,
                    cl,
                    [] if region_list else _st,
                    sl,
                    blend,
                    style_layer_sets=global_sets,
                    regions=region_inputs,
                    propagation=guide_propagation,
                )

            targets = cache.targets((inputs_key, (w, h)), content_layers, style_layers, compute)
            # Departure (coarse-to-fine only): eq. (1) sums over positions, so it grows with the
            # pixel count while eq. (4) does not. Scaling alpha by (final area / this area) keeps
            # the alpha/beta balance of the final size at every coarser scale.
            fw, fh = scales[-1].size
            alpha = s.content_weight * (fw * fh) / (w * h)
            objective = Objective(encoder, targets, alpha, s.style_weight, cl_w, sl_w, s.tv_weight)
            if x is None:
                x = self._start(s.init, init_img, c_s, st_s or rs_s, (w, h), seed, channels)
                x = x.to(device)
            else:
                x = resize(x, (w, h))
            fn = objective if channels == 3 else (lambda img, _o=objective: _o(_gray3(img)))

            def on_step(i, img, parts, total, _k=k, _sc=sc, _done=done):
                step = _done + i
                losses = {name: float(v) for name, v in parts.items()}
                it = Iterate(
                    step=step,
                    total_steps=total_steps,
                    scale=_k,
                    n_scales=len(scales),
                    size=_sc.size,
                    i=i,
                    i_max=_sc.iterations,
                    loss=float(total),
                    losses=losses,
                    elapsed=time.perf_counter() - t0,
                    image=_gray3(img) if channels == 1 else img,
                    progress=(work_before[_k] + i * _sc.size[0] * _sc.size[1]) / total_work,
                )
                history.append(
                    {"step": step, "scale": _k, "elapsed": it.elapsed, "loss": it.loss, **losses}
                )
                if callback is not None:
                    callback(it)

            x = optimise(
                x,
                fn,
                iterations=sc.iterations,
                optimizer=s.optimizer,
                lr=s.lr,
                history_size=s.lbfgs_history,
                on_step=on_step,
                cancel=cancel,
            )
            done += sc.iterations

        out = x.float().cpu()
        if channels == 1:
            out = color.combine_luminance(out, resize(photo.rgb, scales[-1].size))
        elif mode == "swap":
            out = color.swap_colors(out, resize(photo.rgb, scales[-1].size))
        alpha = None
        if photo is not None and photo.alpha is not None:
            alpha = resize(photo.alpha, scales[-1].size)
        inputs: dict[str, Any] = {
            "content": photo.name if photo is not None else None,
            "styles": [
                {
                    "name": p.name,
                    "weight": si.weight,
                    "scale": si.scale,
                    **({"layers": list(_layer_set(si))} if _layer_set(si) else {}),
                }
                for p, si in zip(paintings, style_inputs)
            ],
        }
        if region_list:
            named = dict(zip(map(id, styled), paintings[len(style_inputs) :]))
            inputs["regions"] = [
                {
                    "mask": r.name,
                    "style": named[id(r)].name if r.styled else None,
                    "weight": r.weight,
                    "feather": r.feather,
                }
                for r in region_list
            ]
        return Result(out.clamp(0, 1), alpha, s, seed, time.perf_counter() - t0, inputs, history)

    @staticmethod
    def _region_inputs(
        regions: Sequence[Region],
        guides: Sequence[torch.Tensor],
        region_styles: Sequence[torch.Tensor],
        global_styles: Sequence[torch.Tensor],
        blend: Sequence[float],
        global_sets: Sequence[tuple[str, ...] | None],
        size: tuple[int, int],
        device: torch.device,
    ) -> list[RegionInput]:
        """The regions at one scale: feathered guides, and the global styles (if any) as one
        more region over what no region covers."""
        if not regions:
            return []
        w, h = size
        at_size = [
            feather_guide(resize_guide(g, size), r.feather * max(w, h))
            for r, g in zip(regions, guides)
        ]
        out = []
        styled = iter(region_styles)
        for r, g in zip(regions, at_size):
            if r.styled:
                out.append(
                    RegionInput(
                        g.to(device),
                        [next(styled)],
                        layer_sets=[_layer_set(r.style)],
                        weight=r.weight,
                    )
                )
        if global_styles:
            rest = background_guide(at_size).to(device)
            out.append(RegionInput(rest, list(global_styles), list(blend), list(global_sets)))
        return out

    @staticmethod
    def _start(
        init: str,
        init_img: LoadedImage | None,
        content: torch.Tensor | None,
        styles: Sequence[torch.Tensor],
        size: tuple[int, int],
        seed: int,
        channels: int,
    ) -> torch.Tensor:
        """The first scale's start image, ``(1, channels, h, w)`` on the CPU."""
        w, h = size
        if init == "noise":
            g = torch.Generator().manual_seed(seed)
            noise = torch.randn((1, channels, h, w), generator=g) * NOISE_STD + NOISE_MEAN
            return noise.clamp(0, 1)
        if init == "content":
            if content is None:
                raise SettingsError("init 'content' needs a content image")
            img = content.cpu()
        elif init == "style":
            if not styles:
                raise SettingsError("init 'style' needs a style image")
            img = resize(styles[0].cpu(), (w, h))
        else:
            img = resize(init_img.rgb, (w, h))
        if channels == 1:
            img = color.luminance(img)
        return img


def stylize(
    content: Any, style: Any, settings: Settings | None = None, **overrides: Any
) -> Image.Image:
    """Paint ``content`` in the style of ``style`` and return a PIL image.

    Args:
        content: path or PIL image of the photo.
        style: a path, PIL image or :class:`StyleInput`, or a sequence of them (blended).
        settings: a :class:`Settings`; keyword overrides replace its fields, e.g.
            ``stylize("cat.jpg", "starry.jpg", size=256, iterations=100)``. ``callback`` and
            ``cancel`` are passed to :meth:`Stylizer.run`.
    """
    callback = overrides.pop("callback", None)
    cancel = overrides.pop("cancel", None)
    return (
        Stylizer(settings, **overrides)
        .run(content, style, callback=callback, cancel=cancel)
        .to_pil()
    )


def reconstruct_content(
    image: Any, layer: str = "relu4_2", settings: Settings | None = None, **overrides: Any
) -> Result:
    """Content reconstruction: from white noise, match ``image``'s features at one layer only.

    Shows what that layer keeps of the photo (Gatys et al. 2016, Fig. 1, content reconstructions).
    """
    callback = overrides.pop("callback", None)
    cancel = overrides.pop("cancel", None)
    base = (settings or Settings()).replace(
        content_layers=(layer,),
        content_layer_weights=None,
        style_weight=0.0,
        init="noise",
        preserve_colors="none",
        **overrides,
    )
    return Stylizer(base).run(image, (), callback=callback, cancel=cancel)


def reconstruct_style(
    image: Any,
    layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    settings: Settings | None = None,
    **overrides: Any,
) -> Result:
    """Style reconstruction (texture synthesis): from white noise, match only the Gram matrices
    of ``image`` at ``layers`` (Gatys et al. 2016, Fig. 1, style reconstructions)."""
    callback = overrides.pop("callback", None)
    cancel = overrides.pop("cancel", None)
    base = (settings or Settings()).replace(
        style_layers=tuple(layers),
        style_layer_weights=None,
        content_weight=0.0,
        init="noise",
        preserve_colors="none",
        **overrides,
    )
    return Stylizer(base).run(None, [image], callback=callback, cancel=cancel)
