"""The VGG encoder (VGG19 by default; VGG11/13/16 of any width from their weights) and its
weight formats."""

from ..layers import CONV_LAYERS, LAYER_NAMES, check_layers, deepest
from .arch import Arch, arch_from_state_dict
from .vgg import VGG19Encoder, VGGEncoder, load_encoder
from .weights import FORMATS, WeightSpec, load_state_dict

__all__ = [
    "CONV_LAYERS",
    "LAYER_NAMES",
    "FORMATS",
    "Arch",
    "VGGEncoder",
    "VGG19Encoder",
    "WeightSpec",
    "arch_from_state_dict",
    "check_layers",
    "deepest",
    "load_encoder",
    "load_state_dict",
]
