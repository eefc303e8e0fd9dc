"""Minimal torchvision stand-in for running neural-style-pt in the benchmarks (see README.md).

Only ``torchvision.transforms`` is provided; importing anything else fails loudly.
"""

from . import transforms

__all__ = ["transforms"]
__version__ = "0.0.0+impasto-standin"
