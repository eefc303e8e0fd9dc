"""``impasto train export``: a trained network's convolutions in a format ``--weights`` reads.

* ``.pth``: the ``impasto`` format (layer-named convolutions + the network's own input
  normalisation, ``impasto.spec``).
* ``.caffemodel``: Caffe's protobuf model file, as the method's network was distributed. Caffe
  feeds BGR pixels in 0-255 minus a per-channel mean (``transform_param.mean_value``); the
  network was trained on RGB in [0, 1] normalised by ``(x - mean) / std``, so the first
  convolution's input channels are reordered to BGR and divided by ``255 * std`` (exact: the zero
  padding stays zero), and ``255 * mean`` becomes the file's mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import unwritable
from ..encoder.arch import Arch, arch_from_state_dict
from ..encoder.caffe_write import write_caffemodel
from ..encoder.weights import WeightSpec, save_weights
from ..errors import SettingsError
from .store import read_checkpoint

__all__ = ["ExportResult", "export", "conv_weights"]

EXPORT_SUFFIXES = (".pth", ".caffemodel")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    arch: Arch
    spec: WeightSpec


def conv_weights(state: dict) -> tuple[dict[str, torch.Tensor], WeightSpec]:
    """A checkpoint's convolutions (layer-named) and the input normalisation it trained with."""
    # the names need only the blocks; the channels are read off the weights
    arch = Arch(tuple(state["arch"]["blocks"]), ())
    sd = {}
    for i, name in enumerate(arch.conv_names):
        sd[f"{name}.weight"] = state["model"][f"convs.{i}.weight"].float()
        sd[f"{name}.bias"] = state["model"][f"convs.{i}.bias"].float()
    mean, std = state["norm"]["mean"], state["norm"]["std"]
    return sd, WeightSpec(bgr=False, scale=1.0, mean=tuple(mean), std=tuple(std))


def _to_caffe(sd: dict[str, torch.Tensor], spec: WeightSpec) -> tuple[dict, tuple[float, ...]]:
    convs = {k[: -len(".weight")]: None for k in sd if k.endswith(".weight")}
    out = {}
    for name in convs:
        w, b = sd[f"{name}.weight"].numpy().astype(np.float32), sd[f"{name}.bias"].numpy()
        if name == "conv1_1":
            std = np.asarray(spec.std, dtype=np.float64)[::-1]
            w = (w[:, ::-1].astype(np.float64) / (255.0 * std)[None, :, None, None]).astype(
                np.float32
            )
        out[name] = (np.ascontiguousarray(w), np.ascontiguousarray(b, dtype=np.float32))
    mean = tuple(255.0 * m for m in spec.mean[::-1])
    return out, mean


def export(source: str | os.PathLike, out: str | os.PathLike) -> ExportResult:
    """Write the conv weights of a run folder or checkpoint to ``out`` (format by extension)."""
    dest = Path(out)
    suffix = dest.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise SettingsError(
            f"{dest}: export to {' or '.join(EXPORT_SUFFIXES)} (format by extension)"
        )
    why = unwritable(dest)
    if why:
        raise SettingsError(f"{dest}: {why}")
    sd, spec = conv_weights(read_checkpoint(source))
    arch = arch_from_state_dict(sd, str(source))
    if suffix == ".pth":
        save_weights(dest, sd, spec)
        return ExportResult(dest, arch, spec)
    convs, mean = _to_caffe(sd, spec)
    write_caffemodel(dest, convs, name=f"impasto_{arch.label}", mean=mean)
    return ExportResult(dest, arch, WeightSpec(bgr=True, scale=255.0, mean=mean))
