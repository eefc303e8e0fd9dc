"""The public entry points: :func:`stylize`, :func:`reconstruct_content`, :func:`reconstruct_style`
and the :class:`Stylizer` that runs the pipeline.

A run is three stages, each in its own module:

1. :func:`impasto.plan.make_plan`: inputs loaded and validated once, colour mode, layers,
   weights and scales -> a :class:`~impasto.plan.Plan`;
2. :func:`impasto.pyramid.run_pyramid`: per scale, targets, start image, optimise, hand the
   image up, reporting each iteration through a callback;
3. :func:`impasto.finish.finish`: colour post-processing, alpha, metadata -> :class:`Result`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from PIL import Image

from .allocator import keep_freed_memory
from .cache import RunCache
from .callbacks import Callback
from .checkpoint import Autosave, Checkpoint, check_inputs, input_identities, load_checkpoint
from .errors import SettingsError
from .finish import Result, finish
from .layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from .plan import as_regions, as_styles, make_plan
from .progress import Progress
from .pyramid import Checkpoints, run_pyramid
from .settings import RECONSTRUCTION_TV_WEIGHT, Settings

__all__ = [
    "Result",
    "RunCache",
    "Stylizer",
    "stylize",
    "reconstruct_content",
    "reconstruct_style",
]


class Stylizer:
    """Runs style transfer (or a reconstruction) with fixed :class:`Settings`.

    >>> s = Stylizer(Settings(size=64, iterations=2))                # doctest: +SKIP
    >>> result = s.run("photo.jpg", ["painting.jpg"], callback=print)  # doctest: +SKIP
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        _check_settings(settings)
        base = settings or Settings()
        self.settings = base.replace(**overrides) if overrides else base

    def run(
        self,
        content: Any,
        styles: Any = (),
        *,
        regions: Any = None,
        callback: Callback | None = None,
        cancel: threading.Event | None = None,
        cache: RunCache | None = None,
        checkpoint: str | os.PathLike | Autosave | None = None,
        resume: str | os.PathLike | Checkpoint | None = None,
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
            callback: called with an :class:`~impasto.callbacks.Iterate` after every iteration.
            cancel: an event that stops the run (raising :class:`impasto.errors.Cancelled`).
            cache: a :class:`RunCache` to share decoded images, the encoder and targets with
                other runs.
            checkpoint: a path (saved every :data:`impasto.checkpoint.DEFAULT_EVERY` seconds)
                or an :class:`~impasto.checkpoint.Autosave`: the run's state is written there
                atomically, periodically, on Ctrl-C and on cancel.
            resume: a checkpoint (path or loaded) of this run to continue exactly; the
                settings (the memory budget aside), seed and inputs must be the checkpoint's.
        """
        _check_hooks(callback, cancel)
        started = time.perf_counter()
        cache = cache if cache is not None else RunCache()
        plan = make_plan(self.settings, content, styles, regions, cache)
        if isinstance(resume, (str, os.PathLike)):
            resume = load_checkpoint(resume, map_location=plan.device)
        checkpoints = None
        if checkpoint is not None or resume is not None:
            ids = input_identities(
                content, as_styles(styles), as_regions(regions), weights=self.settings.weights
            )
            if resume is not None:
                check_inputs(resume.inputs, ids)
            if checkpoint is not None:
                autosave = checkpoint if isinstance(checkpoint, Autosave) else Autosave(checkpoint)
                checkpoints = Checkpoints(autosave, ids)
        progress = Progress(plan, callback, started)
        with keep_freed_memory(plan.device.type):
            image = run_pyramid(
                plan, cache, progress, cancel, checkpoints=checkpoints, resume=resume
            )
        elapsed = time.perf_counter() - progress.started
        return finish(plan, image, elapsed, progress.history, progress.memory, progress.notes)


def _check_hooks(callback: Any, cancel: Any) -> None:
    """A callback or cancel of the wrong kind failed only after the first iteration."""
    if callback is not None and not callable(callback):
        raise SettingsError(f"callback must be callable, not {type(callback).__name__}")
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise SettingsError(f"cancel must be a threading.Event, not {type(cancel).__name__}")


def _check_settings(settings: Any) -> None:
    """A dict was accepted as the settings and failed deep inside the run."""
    if settings is not None and not isinstance(settings, Settings):
        raise SettingsError(
            "settings must be an impasto.Settings (Settings(**d) or Settings.from_dict(d) for "
            f"a dict), not {type(settings).__name__}"
        )


def _split_run_options(overrides: dict[str, Any]) -> dict[str, Any]:
    keys = ("callback", "cancel", "cache", "checkpoint", "resume")
    return {k: overrides.pop(k) for k in keys if k in overrides}


def _reconstruction_settings(
    settings: Settings | None,
    overrides: dict[str, Any],
    fixed: dict[str, Any],
    argument: tuple[str, str],
) -> Settings:
    """``settings`` with ``overrides``, then the reconstruction's own ``fixed`` choices; an
    override of a fixed choice is an error rather than silently ignored. TV is off
    (:data:`RECONSTRUCTION_TV_WEIGHT`) unless ``settings`` or ``overrides`` give a weight.
    ``argument``: ``(setting, name)``, the fixed setting the caller's argument ``name`` gives,
    which the errors about it name (``layer: unknown layer ...``, not ``content_layers``)."""
    _check_settings(settings)
    clash = sorted(set(overrides) & set(fixed))
    base = (settings or Settings()).replace(**overrides)
    default = Settings()
    clash += sorted(  # ... or in the settings given (they ran from noise without a word)
        k for k, v in fixed.items() if getattr(base, k) not in (getattr(default, k), v)
    )
    if clash:
        raise SettingsError(f"a reconstruction sets {', '.join(dict.fromkeys(clash))} itself")
    if base.tv_weight is None:  # "the default": the stylizer's, not a reconstruction's
        base = base.replace(tv_weight=RECONSTRUCTION_TV_WEIGHT)
    try:
        return base.replace(**fixed)
    except SettingsError as e:
        setting, name = argument
        head, sep, rest = str(e).partition(": ")
        if sep and head == setting:
            raise SettingsError(f"{name}: {rest}") from None
        raise


def stylize(
    content: Any, style: Any, settings: Settings | None = None, **overrides: Any
) -> Image.Image:
    """Paint ``content`` in the style of ``style`` and return a PIL image.

    Args:
        content: path, ``example:NAME`` or PIL image of the photo, or None for texture
            synthesis (style only).
        style: a path, PIL image or :class:`StyleInput`, or a sequence of them (blended).
        settings: a :class:`Settings`; keyword overrides replace its fields, e.g.
            ``stylize("cat.jpg", "starry.jpg", size=256, iterations=100)``. ``callback``,
            ``cancel``, ``cache``, ``checkpoint`` and ``resume`` are passed to
            :meth:`Stylizer.run`.
    """
    run_options = _split_run_options(overrides)
    return Stylizer(settings, **overrides).run(content, style, **run_options).to_pil()


def reconstruct_content(
    image: Any,
    layer: str = DEFAULT_CONTENT_LAYERS[0],
    settings: Settings | None = None,
    **overrides: Any,
) -> Result:
    """Content reconstruction: from white noise, match ``image``'s features at one layer only
    (no TV unless a weight is given).

    Shows what that layer keeps of the photo (Gatys et al. 2016, Fig. 1, content reconstructions).
    """
    if not isinstance(layer, str) or "," in layer:
        raise SettingsError(
            f"layer: one layer name such as 'relu4_2' (a content reconstruction matches one "
            f"layer), got {layer!r}"
        )
    run_options = _split_run_options(overrides)
    fixed = dict(
        content_layers=(layer,),
        content_layer_weights=None,
        content_weight=1.0,
        style_weight=0.0,
        init="noise",
        preserve_colors="none",
    )
    base = _reconstruction_settings(settings, overrides, fixed, ("content_layers", "layer"))
    return Stylizer(base).run(image, (), **run_options)


def reconstruct_style(
    image: Any,
    layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
    settings: Settings | None = None,
    **overrides: Any,
) -> Result:
    """Style reconstruction (texture synthesis): from white noise, match only the Gram matrices
    of ``image`` at ``layers``, no TV unless a weight is given (Gatys et al. 2016, Fig. 1,
    style reconstructions). ``layers``: names, or one string of comma-separated names."""
    if isinstance(layers, str):  # "relu1_1" was split into its letters
        layers = [n.strip() for n in layers.split(",") if n.strip()]
    if not layers or isinstance(layers, (bytes, dict)) or not isinstance(layers, Iterable):
        raise SettingsError(f"layers: give one or more style layer names, got {layers!r}")
    if isinstance(image, (list, tuple)):
        raise SettingsError("a style reconstruction takes one image (texture synthesis)")
    run_options = _split_run_options(overrides)
    fixed = dict(
        style_layers=tuple(layers),
        style_layer_weights=None,
        content_weight=0.0,
        style_weight=1.0,
        init="noise",
        preserve_colors="none",
    )
    base = _reconstruction_settings(settings, overrides, fixed, ("style_layers", "layers"))
    return Stylizer(base).run(None, [image], **run_options)
