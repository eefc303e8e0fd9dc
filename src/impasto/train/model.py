"""VGG classifiers to train: the VGG11/13/16/19 convolution stacks (any ``width``) with ReLUs and
max pooling, then global average pooling and one linear layer to the classes.

The head differs from VGG's three fully connected layers on purpose: only the convolutions are
kept for style transfer, and a small head trains faster on small sets. Pooling uses
``ceil_mode`` so that tiny images (16 px) survive five poolings; at sizes divisible by 32 it is
plain 2x2 max pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..encoder.arch import VGG_BLOCKS, Arch, arch_from_blocks
from ..errors import SettingsError
from .config import ARCHS, INITS

__all__ = ["ARCHS", "INITS", "VGGNet", "build_model"]


class VGGNet(nn.Module):
    """A VGG classifier whose convolutions are named as the encoder names them."""

    def __init__(self, arch: Arch, num_classes: int) -> None:
        super().__init__()
        self.arch = arch
        self.convs = nn.ModuleList()
        in_ch = 3
        for ch in arch.channels:
            self.convs.append(nn.Conv2d(in_ch, ch, 3, padding=1))
            in_ch = ch
        self.head = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = 0
        for n in self.arch.blocks:
            for _ in range(n):
                x = F.relu(self.convs[i](x), inplace=True)
                i += 1
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        return self.head(x.mean((2, 3)))


def init_weights(model: VGGNet, init: str, std: float, generator: torch.Generator) -> None:
    """``kaiming``: He et al. normal (fan-out, ReLU), the default; ``gaussian``: N(0, std²) as in
    the method's Caffe training (std 0.01; known not to train 19 plain layers from scratch).
    Biases 0; the head N(0, 0.01²)."""
    for conv in model.convs:
        if init == "kaiming":
            fan_out = conv.weight.shape[0] * 9
            conv.weight.data.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=generator)
        else:
            conv.weight.data.normal_(0.0, std, generator=generator)
        conv.bias.data.zero_()
    model.head.weight.data.normal_(0.0, 0.01, generator=generator)
    model.head.bias.data.zero_()


def build_model(
    arch: str, width: float, num_classes: int, init: str = "kaiming", init_std: float = 0.01,
    seed: int = 0,
) -> VGGNet:  # fmt: skip
    """A freshly initialised VGG classifier (same seed, same weights)."""
    if arch not in VGG_BLOCKS:
        raise SettingsError(f"unknown architecture {arch!r}; use {', '.join(ARCHS)}")
    if init not in INITS:
        raise SettingsError(f"unknown init {init!r}; use {', '.join(INITS)}")
    if not 0 < width <= 4:
        raise SettingsError(f"width must be in (0, 4], got {width}")
    model = VGGNet(arch_from_blocks(VGG_BLOCKS[arch], width), num_classes)
    init_weights(model, init, init_std, torch.Generator().manual_seed(seed))
    return model
