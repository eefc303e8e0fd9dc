"""``impasto sweep``: one labelled contact sheet over one dial, to see a trade-off at a glance.

``--over ratio`` varies alpha/beta (content weight / style weight, Gatys et al. 2016 Fig. 3;
default 1, 0.3, 0.1, 0.03 with the normalized loss scale, 1e-4, 1e-3, 1e-2, 1e-1 with
``--loss-scale paper``), ``--over style-layers`` the style layer set (cumulative:
relu1_1; relu1_1..relu2_1; ... ; relu1_1..relu5_1, as in Fig. 1's style rows), and
``--over OPTION --values ...`` any engine setting (``--over style-scale --values 0.5,1,2``,
``--over preserve-colors --values none,luminance,histogram,swap``).

Every cell uses the same seed and the same settings except the swept one; the sheet's title
states them. Work is shared between cells through one :class:`impasto.api.RunCache`: images are
decoded once, the encoder is built once, and targets (which do not depend on the loss weights or
on which layers are used) are computed once at the union of all cells' layers and reused when
only weights or layer sets change.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .errors import ImageError, SettingsError, WeightsError
from .layers import describe_layers
from .settings import DEFAULT_RATIOS, Settings
from .settings_text import flag_type
from .settings_text import floats as _floats

__all__ = ["DEFAULT_RATIOS", "SweepResult", "describe_settings", "run_sweep", "sweep_cells"]

_RATIO = ("ratio", "alpha-beta", "alpha_beta")
_LAYERS = ("style-layers", "style_layers")
_TUPLE_OPTIONS = ("style_layers", "content_layers", "style_layer_weights", "content_layer_weights")


@dataclass
class SweepResult:
    """What a sweep made.

    Attributes:
        sheet: the labelled contact sheet (RGB), title included.
        cells: ``(caption, Result)`` per cell, in order.
        title: the sheet's title (the fixed settings).
        stats: the shared cache's counters (images loaded, encoders built, targets computed and
            reused).
    """

    sheet: Image.Image
    cells: list[tuple[str, Any]]
    title: str
    stats: dict[str, int] = field(default_factory=dict)


def _option_name(over: str) -> str:
    name = over.strip().replace("-", "_")
    known = {f.name for f in dataclasses.fields(Settings)}
    if name not in known:
        raise SettingsError(
            f"cannot sweep over {over!r}: use ratio, style-layers or one of "
            f"{', '.join(sorted(n.replace('_', '-') for n in known))}"
        )
    return name


def _parse_values(name: str, text: str) -> list[Any]:
    """Values of a Settings field from text: ``;``-separated for tuple-valued options, else
    ``,`` (or ``;``) separated; ``none`` gives None for options that may be unset."""
    hint = typing.get_type_hints(Settings, include_extras=True)[name]
    sep = ";" if (name in _TUPLE_OPTIONS or ";" in text) else ","
    convert = flag_type(name, hint) or str  # as its flag reads it: --max-memory 2G
    optional = type(None) in typing.get_args(hint)
    out = []
    for item in (t.strip() for t in text.split(sep)):
        if not item:
            continue
        if optional and item.lower() == "none":
            out.append(None)
            continue
        try:
            out.append(convert(item))
        except (ValueError, argparse.ArgumentTypeError):
            raise SettingsError(f"bad value {item!r} for {name.replace('_', '-')}") from None
    if not out:
        raise SettingsError("values: none given")
    return out


def sweep_cells(
    settings: Settings, over: str, values: Sequence[Any] | None = None
) -> list[tuple[str, Settings]]:
    """The cells of a sweep: ``(caption, settings)`` pairs, differing only in the swept dial.

    Args:
        settings: the fixed settings (a seed is drawn here if it has none, so every cell
            shares it).
        over: ``"ratio"`` (alpha/beta: the style weight becomes ``content_weight / ratio``),
            ``"style-layers"`` (values: layer tuples; default the cumulative sets of
            ``settings.style_layers``) or a :class:`Settings` field name (``-`` or ``_``).
        values: the values (numbers for ratio, layer tuples for style-layers, field values
            otherwise); strings are parsed as on the command line.

    Raises:
        SettingsError: unknown option, missing or invalid values.
    """
    if settings.seed is None:
        settings = settings.replace(seed=random.SystemRandom().randrange(2**31))
    key = over.strip().lower()
    if isinstance(values, str):
        values = None if not values.strip() else values
    if key in _RATIO:
        return _ratio_cells(settings, values)
    if key in _LAYERS:
        if isinstance(values, str):
            values = _parse_values("style_layers", values)
        if values is None:
            base = settings.style_layers
            values = [base[: k + 1] for k in range(len(base))]
        return [
            (describe_layers(v), settings.replace(style_layers=tuple(v), style_layer_weights=None))
            for v in values
        ]
    name = _option_name(key)
    if values is None:
        raise SettingsError(f"values: a sweep over {over} needs them")
    if isinstance(values, str):
        values = _parse_values(name, values)
    return [_option_cell(settings, name, v) for v in values]


def _ratio_label(r: float) -> str:
    """1e-04 in the paper's units, 0.3 in the normalized ones."""
    return f"{r:.0e}" if r < 0.01 else f"{r:g}"


def _ratio_cells(settings: Settings, values: Any) -> list[tuple[str, Settings]]:
    if settings.content_weight <= 0:
        raise SettingsError("a ratio sweep needs a content weight above 0")
    if isinstance(values, str):
        try:
            values = list(_floats(values.replace(";", ",")))
        except argparse.ArgumentTypeError as e:  # an internal error: 'abc' as a ratio
            raise SettingsError(f"values: for a ratio sweep, {e}") from None
        if not values:  # ",,," took the default ratios without a word
            raise SettingsError("values: none given")
    ratios = [float(v) for v in (values or DEFAULT_RATIOS[settings.loss_scale])]
    if any(not r > 0 for r in ratios):
        raise SettingsError("alpha/beta ratios must be > 0")
    return [
        (
            f"alpha/beta {_ratio_label(r)}",
            settings.replace(style_weight=settings.content_weight / r),
        )
        for r in ratios
    ]


def _option_cell(settings: Settings, name: str, value: Any) -> tuple[str, Settings]:
    shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
    if value is None:  # as typed: "tile none", not "tile None"
        shown = "none"
    if name == "max_memory" and value is not None:
        from .memory import format_bytes

        shown = format_bytes(value)
    changes: dict[str, Any] = {name: value}
    if name in ("style_layers", "content_layers"):
        changes[name.replace("layers", "layer_weights")] = None
    return f"{name.replace('_', '-')} {shown}", settings.replace(**changes)


def describe_settings(settings: Settings, over: str) -> str:
    """One line of the settings every cell shares (the swept dial left out)."""
    key = over.strip().lower()
    skip = {"style_weight"} if key in _RATIO else set()
    skip |= {"style_layers", "style_layer_weights"} if key in _LAYERS else set()
    if key not in _RATIO and key not in _LAYERS:
        skip.add(_option_name(key))
        if key.replace("-", "_") in ("content_weight", "style_weight"):
            skip.add("ratio")
    s = settings

    def unless_swept(*named: tuple[str, str]) -> str:
        return " ".join(text for name, text in named if name not in skip)

    parts = [unless_swept(("size", f"{s.size} px")),
             unless_swept(("iterations", f"{s.iterations} it"), ("optimizer", s.optimizer)),
             unless_swept(("init", f"init {s.init}"))]  # fmt: skip
    parts = [p for p in parts if p]
    if "ratio" not in skip and "style_weight" not in skip and "content_weight" not in skip:
        ratio = s.content_weight / s.beta if s.beta else float("inf")
        parts.append(f"alpha/beta {_ratio_label(ratio)}")
    if "style_layers" not in skip:
        parts.append(f"style {describe_layers(s.style_layers)}")
    defaults = Settings()
    shown = {"size", "iterations", "optimizer", "init", "seed", "style_layers", "style_weight"}
    for f in dataclasses.fields(Settings):
        if f.name in skip or f.name in shown:
            continue
        v = getattr(s, f.name)
        if v != getattr(defaults, f.name):
            text = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
            parts.append(f"{f.name.replace('_', '-')} {text}")
    if "seed" not in skip:
        parts.append(f"seed {s.seed}")
    return ", ".join(parts)


def _check_cells(cells: list[tuple[str, Settings]], content: Any, styles: Any, cache) -> None:
    """Plan every cell (images, size, start image, layers) and build its network (weights)
    before the first one runs: a value only its own cell could refuse (a size too small, a
    missing ``--init`` file, bad weights) threw away the cells painted before it."""
    from .plan import make_plan

    for caption, s in cells:
        try:
            plan = make_plan(s, content, styles, None, cache)
            layers = [*plan.content_layers, *plan.style_layers]
            cache.encoder(s, plan.device, plan.dtype, layers, winograd=plan.winograd)
        except (SettingsError, ImageError, WeightsError) as exc:
            raise type(exc)(f"{exc} (cell {caption})") from None  # the setting heads it


def run_sweep(
    content: Any,
    styles: Any,
    settings: Settings,
    over: str,
    values: Sequence[Any] | str | None = None,
    *,
    columns: int | None = None,
    progress: Callable[[int, str], Any] | None = None,
    cancel: Any = None,
) -> SweepResult:
    """Run one stylisation per cell (shared cache, same seed) and lay them out in a sheet.

    Args:
        content: the photo (path or PIL image).
        styles: paintings as for :meth:`impasto.api.Stylizer.run`.
        settings: the fixed settings.
        over: the dial (see :func:`sweep_cells`).
        values: its values (default for ratio and style-layers).
        columns: images per row of the sheet (default: one row up to 6).
        progress: ``progress(cell_index, caption)`` returns the callback for that cell's run
            (or None).
        cancel: a ``threading.Event`` that stops the sweep.
    """
    from .api import RunCache, Stylizer
    from .plan import as_styles as _as_styles
    from .sheet import contact_sheet, with_header

    cells = sweep_cells(settings, over, values)
    cache = RunCache(
        content_layers=tuple(dict.fromkeys(x for _, s in cells for x in s.content_layers)),
        style_layers=tuple(dict.fromkeys(x for _, s in cells for x in s.style_layers)),
    )
    style_inputs = _as_styles(styles)
    _check_cells(cells, content, style_inputs, cache)
    results = []
    for i, (caption, cell_settings) in enumerate(cells):
        callback = progress(i, caption) if progress is not None else None
        result = Stylizer(cell_settings).run(
            content, style_inputs, callback=callback, cancel=cancel, cache=cache
        )
        results.append((caption, result))
    names = results[0][1].inputs
    what = " + ".join(
        [n for n in [names.get("content")] if n] + [st["name"] for st in names["styles"]]
    )
    title = f"{what}: {describe_settings(cells[0][1], over)}"
    grid = contact_sheet([(r.to_pil(), caption) for caption, r in results], columns=columns)
    sheet = with_header(grid, [title])
    return SweepResult(sheet, results, title, dict(cache.stats))
