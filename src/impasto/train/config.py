"""What ``impasto train run`` takes: :class:`TrainConfig`, the one home of every training
default, and the values its enumerated settings accept. Nothing here loads torch: the
``impasto`` command builds its parser from this module, and ``impasto --help`` answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..layers import VGG_BLOCKS

__all__ = ["TrainConfig", "ARCHS", "INITS", "SCHEDULES", "PRECISIONS", "MIN_SIZE", "STATS_IMAGES"]

ARCHS: tuple[str, ...] = tuple(VGG_BLOCKS)
INITS: tuple[str, ...] = ("kaiming", "gaussian")
SCHEDULES: tuple[str, ...] = ("step", "cosine")
# The training loop autocasts to bf16 or not at all (fp16 would need loss scaling).
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
MIN_SIZE = 16  # the smallest training size the model's docstring promises (five ceil poolings)
STATS_IMAGES = 5000  # the input normalisation is computed over at most this many images


@dataclass
class TrainConfig:
    """Everything ``impasto train run`` sets (``batch_size`` is per process)."""

    data: str
    out_dir: str
    arch: str = "vgg19"
    width: float = 1.0
    size: int = 224
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    step_epochs: int = 0  # step schedule: lr x gamma every this many epochs (0: epochs // 3)
    gamma: float = 0.1
    init: str = "kaiming"
    init_std: float = 0.01
    seed: int = 0
    val_fraction: float = 0.1
    val_data: str | None = None
    crop: bool = False
    flip: bool = False
    checkpoint_every: int = 0
    workers: int = 0
    device: str = "auto"
    precision: str = "auto"
    stats_images: int = STATS_IMAGES
    max_steps: int | None = None
    resume: bool = False
