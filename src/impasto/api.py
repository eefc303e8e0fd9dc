"""The public entry points: :func:`stylize`, :func:`reconstruct_content`, :func:`reconstruct_style`
and the :class:`Stylizer` that runs the whole pipeline.

Data flow: path -> :func:`impasto.image.load_image` -> RGB [0, 1] tensors -> (colour
pre-processing) -> per scale: resize, targets (once), objective, optimiser loop -> callbacks ->
(colour post-processing, alpha restored) -> :class:`Result`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from . import __version__, color
from .callbacks import Callback, Iterate
from .devices import resolve_device, resolve_dtype
from .encoder import deepest, load_encoder
from .errors import SettingsError
from .image import LoadedImage, fit_long_side, load_image, resize, save_image, to_pil
from .objective import Objective, compute_targets, normalized_weights
from .optimise import optimise
from .schedule import plan_scales
from .settings import Settings, StyleInput

__all__ = ["Result", "Stylizer", "stylize", "reconstruct_content", "reconstruct_style"]

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


def _gray3(y: torch.Tensor) -> torch.Tensor:
    return y.expand(-1, 3, -1, -1)


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
        callback: Callback | None = None,
        cancel: threading.Event | None = None,
    ) -> Result:
        """Optimise an image.

        Args:
            content: path or PIL image of the photo, or None for texture synthesis (style only).
            styles: one style (path, PIL image or :class:`StyleInput`) or a sequence of them;
                may be empty for a content reconstruction.
            callback: called with an :class:`Iterate` after every iteration.
            cancel: an event that stops the run (raising :class:`impasto.errors.Cancelled`).
        """
        s = self.settings
        t0 = time.perf_counter()
        style_inputs = _as_styles(styles)
        if content is None and not style_inputs:
            raise SettingsError("nothing to do: give a content image, a style image, or both")
        device = resolve_device(s.device)
        dtype = resolve_dtype(s.precision, device)
        seed = s.seed if s.seed is not None else random.SystemRandom().randrange(2**31)

        photo: LoadedImage | None = load_image(content) if content is not None else None
        paintings = [load_image(si.image) for si in style_inputs]
        init_img = load_image(s.init_path) if s.init_path is not None else None
        content_rgb = photo.rgb if photo is not None else None
        style_rgbs = [p.rgb for p in paintings]

        mode = s.preserve_colors
        if mode != "none" and content_rgb is None:
            raise SettingsError("colour preservation needs a content image")
        if mode in ("histogram", "luminance", "histogram-reverse") and not style_rgbs:
            raise SettingsError(f"preserve colors '{mode}' needs a style image")
        if mode == "histogram":
            style_rgbs = [color.match_color(r, content_rgb) for r in style_rgbs]
        elif mode == "histogram-reverse":
            content_rgb = color.match_color(content_rgb, style_rgbs[0])
        elif mode == "luminance":
            content_y = color.luminance(content_rgb)
            style_rgbs = [
                _gray3(color.match_luminance(color.luminance(r), content_y)) for r in style_rgbs
            ]
            content_rgb = _gray3(content_y)

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
        style_layers = s.style_layers if style_rgbs and s.style_weight > 0 else ()
        if not content_layers and not style_layers:
            raise SettingsError("both loss terms are off: set a content or style weight above 0")
        encoder = load_encoder(
            s.pooling,
            device=device,
            dtype=dtype,
            last=deepest([*content_layers, *style_layers]),
            weights=s.weights,
            weights_format=s.weights_format,
        )
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
        channels = 1 if mode == "luminance" else 3
        total_steps = sum(sc.iterations for sc in scales)
        history: list[dict] = []
        done = 0
        x: torch.Tensor | None = None

        for k, sc in enumerate(scales):
            w, h = sc.size
            c_s = resize(content_rgb, (w, h)).to(device) if content_rgb is not None else None
            st_s = []
            for si, rgb in zip(style_inputs, style_rgbs):
                scale = si.scale if si.scale is not None else s.style_scale
                side = max(16, round(max(w, h) * scale))
                st_s.append(
                    resize(rgb, fit_long_side((rgb.shape[-1], rgb.shape[-2]), side)).to(device)
                )
            targets = compute_targets(encoder, c_s, content_layers, st_s, style_layers, blend)
            objective = Objective(
                encoder, targets, s.content_weight, s.style_weight, cl_w, sl_w, s.tv_weight
            )
            if x is None:
                x = self._start(s.init, init_img, c_s, st_s, (w, h), seed, channels).to(device)
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
        inputs = {
            "content": photo.name if photo is not None else None,
            "styles": [
                {"name": p.name, "weight": si.weight, "scale": si.scale}
                for p, si in zip(paintings, style_inputs)
            ],
        }
        return Result(out.clamp(0, 1), alpha, s, seed, time.perf_counter() - t0, inputs, history)

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
