"""VGG architectures read off a set of convolution weights.

A VGG network is five blocks of 3x3 convolutions (each followed by a ReLU), a 2x2 pooling after
each block, then fully connected layers that the encoder never uses. VGG11, VGG13, VGG16 and
VGG19 differ only in how many convolutions each block holds; ``--width`` networks trained by
``impasto train`` differ in channel counts. Both are read from the weight shapes, so any of them
loads. Layer names (``conv3_2``, ``relu3_2``, ``pool3`` ...) are always a subset of VGG19's
(:mod:`impasto.layers`): block ``b``'s ``c``-th convolution is ``conv{b}_{c}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..errors import WeightsError
from ..layers import BLOCKS, CONV_NAME, VGG_BLOCKS, conv_names, layer_names

__all__ = ["Arch", "VGG_BLOCKS", "VGG_WIDTHS", "arch_from_state_dict", "arch_from_blocks"]

# VGG_BLOCKS (convolutions per block of VGG11/13/16/19) lives in impasto.layers, which loads no
# torch (the CLI's --arch choices come from it); it is re-exported here.
# Output channels of each block at width 1.
VGG_WIDTHS: tuple[int, ...] = tuple(ch for _, ch in BLOCKS)


@dataclass(frozen=True)
class Arch:
    """A VGG network's convolutional part.

    Attributes:
        blocks: convolutions in each of the five blocks, e.g. ``(1, 1, 2, 2, 2)`` for VGG11.
        channels: output channels of every convolution, in order.
    """

    blocks: tuple[int, ...]
    channels: tuple[int, ...]

    @property
    def label(self) -> str:
        """``VGG11``, ``VGG16``, ``VGG19`` ... (convolutions + the three fully connected)."""
        return f"VGG{sum(self.blocks) + 3}"

    @property
    def conv_names(self) -> tuple[str, ...]:
        """The convolutions in forward order: ``conv1_1, conv1_2, ..., conv5_4``."""
        return conv_names(self.blocks)

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Every layer in forward order: ``conv1_1, relu1_1, ..., pool1, ..., pool5``."""
        return layer_names(self.blocks)

    def channels_of(self, name: str) -> int:
        """Feature channels at layer ``name`` (a conv, relu or pool of this network)."""
        b = int(name[4])
        if name.startswith("pool"):
            return self.channels[sum(self.blocks[:b]) - 1]
        return self.channels[self.conv_names.index(f"conv{b}_{name[6:]}")]


def arch_from_blocks(blocks: tuple[int, ...], width: float = 1.0) -> Arch:
    """The architecture with ``blocks`` convolutions per block and channels scaled by ``width``."""
    channels = tuple(
        max(1, round(VGG_WIDTHS[b] * width)) for b, n in enumerate(blocks) for _ in range(n)
    )
    return Arch(tuple(blocks), channels)


def _blocks_from_names(names: list[str], source: str) -> tuple[int, ...]:
    per_block: dict[int, list[int]] = {}
    for name in names:
        m = CONV_NAME.match(name)
        if m is None:
            raise WeightsError(f"{source}: unexpected convolution name {name!r}")
        per_block.setdefault(int(m[1]), []).append(int(m[2]))
    if sorted(per_block) != [1, 2, 3, 4, 5]:
        raise WeightsError(
            f"{source}: expected convolutions in blocks 1-5, found blocks "
            f"{', '.join(map(str, sorted(per_block)))}"
        )
    blocks = []
    for b in range(1, 6):
        idx = sorted(per_block[b])
        if idx != list(range(1, len(idx) + 1)) or len(idx) > BLOCKS[b - 1][0]:
            have = ", ".join(f"conv{b}_{c}" for c in idx)
            raise WeightsError(f"{source}: block {b} has {have}; not a VGG block")
        blocks.append(len(idx))
    return tuple(blocks)


def arch_from_state_dict(sd: Mapping[str, torch.Tensor], source: str = "weights") -> Arch:
    """Read the architecture off ``{"conv1_1.weight": ..., "conv1_1.bias": ...}``, checking that
    every shape is consistent (3x3 kernels, each layer's inputs the previous layer's outputs).

    Raises:
        WeightsError: one line naming what is wrong.
    """
    names = [k[: -len(".weight")] for k in sd if k.endswith(".weight")]
    if not names:
        raise WeightsError(f"{source}: no convolution weights found")
    blocks = _blocks_from_names(names, source)
    arch = Arch(blocks, ())
    channels, in_ch = [], 3
    for name in arch.conv_names:
        w, b = sd[f"{name}.weight"], sd.get(f"{name}.bias")
        if w.ndim != 4 or tuple(w.shape[1:]) != (in_ch, 3, 3):
            raise WeightsError(
                f"{source}: {name} has shape {tuple(w.shape)}, expected (out, {in_ch}, 3, 3)"
            )
        if b is None or tuple(b.shape) != (w.shape[0],):
            got = "no bias" if b is None else f"bias of shape {tuple(b.shape)}"
            raise WeightsError(f"{source}: {name} has {got}, expected ({w.shape[0]},)")
        channels.append(int(w.shape[0]))
        in_ch = int(w.shape[0])
    return Arch(blocks, tuple(channels))
