"""``impasto train``: train a VGG network as a classifier on your own labelled images (on one
machine or, launched by ``torchrun``, on several), then use its convolutions for style transfer.

Modules: :mod:`.config` (:class:`TrainConfig`, every default; no torch), :mod:`.data` (image
folders and LMDB, decoding, statistics), :mod:`.pack` (folder -> LMDB), :mod:`.model`
(VGG11/13/16/19 of any width), :mod:`.loop` (SGD, checkpoints, resume), :mod:`.ddp`
(torch.distributed), :mod:`.store` (run files), :mod:`.export_weights` (weights out).

The names below other than :class:`TrainConfig` are imported on first use, so that the
``impasto`` command can build its parser from :mod:`.config` without loading torch.
"""

from __future__ import annotations

from ..lazy import lazy_dir, lazy_getattr
from .config import TrainConfig

_LAZY = {
    "DataError": "data",
    "ExportResult": "export_weights",
    "export": "export_weights",
    "PackResult": "pack",
    "pack_folder": "pack",
    "TrainProgress": "loop",
    "TrainResult": "loop",
    "lr_at": "loop",
    "train": "loop",
}

__all__ = ["TrainConfig", *sorted(_LAZY)]

__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(__all__)
