"""The one table of VGG19 layer names (``conv1_1``, ``relu1_1``, ..., ``pool5``) and the default
layer sets; the names of any VGG network (:func:`layer_names`, :func:`conv_names`) come from the
same generator.

Layers are always addressed by these names; positions never leak out of the encoder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .errors import SettingsError

__all__ = [
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_STYLE_LAYERS",
    "BLOCKS",
    "CONV_LAYERS",
    "CONV_NAME",
    "LAYER_NAMES",
    "VGG_BLOCKS",
    "check_layers",
    "conv_names",
    "deepest",
    "describe_layers",
    "layer_channels",
    "layer_names",
    "layer_stride",
]

# Number of 3x3 convolutions in each of VGG19's five blocks, and their output channels.
BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))
# Convolutions per block of the four VGG configurations (Simonyan & Zisserman 2014, Table 1).
VGG_BLOCKS: dict[str, tuple[int, ...]] = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": tuple(n for n, _ in BLOCKS),
}
# A convolution's name: block and position in the block (``conv3_2``: block 3, second).
CONV_NAME = re.compile(r"^conv(\d)_(\d)$")


def layer_names(blocks: Iterable[int]) -> tuple[str, ...]:
    """Every layer of a VGG network with ``blocks`` convolutions per block, in forward order:
    ``conv1_1, relu1_1, ..., pool1, ..., pool5``."""
    names: list[str] = []
    for b, n_conv in enumerate(blocks, start=1):
        for c in range(1, n_conv + 1):
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
        names.append(f"pool{b}")
    return tuple(names)


def conv_names(blocks: Iterable[int]) -> tuple[str, ...]:
    """The convolutions of :func:`layer_names`, in order: ``conv1_1, conv1_2, ...``."""
    return tuple(name for name in layer_names(blocks) if name.startswith("conv"))


LAYER_NAMES = layer_names(n for n, _ in BLOCKS)
CONV_LAYERS = conv_names(n for n, _ in BLOCKS)

# Gatys et al. 2016: content at relu4_2 ("conv4_2"), style at relu1_1 ... relu5_1.
DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)
DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}


def check_layers(names: Iterable[str]) -> None:
    """Raise a one-line :class:`SettingsError` listing the valid names if any name is unknown."""
    bad = [n for n in names if n not in _INDEX]
    if bad:
        raise SettingsError(
            f"unknown layer {', '.join(map(repr, bad))}; valid names: {', '.join(LAYER_NAMES)}"
        )


def deepest(names: Iterable[str]) -> str | None:
    """The deepest of ``names`` (where the forward pass can stop), or None if empty."""
    names = list(names)
    check_layers(names)
    return max(names, key=_INDEX.__getitem__) if names else None


def layer_channels(name: str) -> int:
    """Number of feature channels N_l at ``name``."""
    check_layers([name])
    return BLOCKS[int(name[4]) - 1][1]


def layer_stride(name: str) -> int:
    """Spatial down-sampling factor of ``name`` relative to the input (1, 2, 4, 8, 16 or 32)."""
    check_layers([name])
    block = int(name[4])
    return 2 ** (block if name.startswith("pool") else block - 1)


def describe_layers(layers: Sequence[str]) -> str:
    """A short label of a layer set: ``relu1_1..relu3_1`` for a run of the default style
    layers from the first, else the names as given, comma-separated (``relu3_1,relu1_1``:
    never a range the set does not hold)."""
    layers = tuple(layers)
    if len(layers) > 1 and layers == DEFAULT_STYLE_LAYERS[: len(layers)]:
        return f"{layers[0]}..{layers[-1]}"
    return ",".join(layers)
