"""``impasto train``: train a VGG network as a classifier on your own labelled images (on one
machine or, launched by ``torchrun``, on several), then use its convolutions for style transfer.

Modules: :mod:`.data` (image folders and LMDB, decoding, statistics), :mod:`.pack` (folder ->
LMDB), :mod:`.model` (VGG11/16/19 of any width), :mod:`.loop` (SGD, checkpoints, resume),
:mod:`.ddp` (torch.distributed), :mod:`.store` (run files), :mod:`.export` (weights out).
"""

from .data import DataError
from .export import ExportResult, export
from .loop import TrainConfig, TrainProgress, TrainResult, lr_at, train
from .pack import PackResult, pack_folder

__all__ = [
    "DataError",
    "ExportResult",
    "PackResult",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "export",
    "lr_at",
    "pack_folder",
    "train",
]
