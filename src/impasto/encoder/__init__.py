"""The VGG19 encoder and its weight formats."""

from ..layers import CONV_LAYERS, LAYER_NAMES, check_layers, deepest
from .vgg19 import POOLINGS, VGG19Encoder, load_encoder
from .weights import FORMATS, WeightSpec, load_state_dict

__all__ = [
    "CONV_LAYERS",
    "LAYER_NAMES",
    "POOLINGS",
    "FORMATS",
    "VGG19Encoder",
    "WeightSpec",
    "check_layers",
    "deepest",
    "load_encoder",
    "load_state_dict",
]
