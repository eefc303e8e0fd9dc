"""Labelled image sets for training: an image folder (one sub-folder per class) or an LMDB made
by ``impasto train pack``; decoding, resizing by linear interpolation, per-channel statistics,
random crops and flips.

Images that cannot be decoded are skipped (the batch is smaller) and reported by name, never a
crash mid-epoch. All randomness (splits, crops, flips) derives from the seed, the epoch and the
image's index, so any worker layout and any resume point sees the same images.
"""

from __future__ import annotations

import io
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ImpastoError
from .config import STATS_IMAGES

__all__ = [
    "DataError",
    "IMAGE_SUFFIXES",
    "Source",
    "FolderSource",
    "LmdbSource",
    "open_source",
    "decode",
    "ImageDataset",
    "collate",
    "compute_stats",
    "split_indices",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
META_KEY = b"__meta__"


class DataError(ImpastoError):
    """A training data set is missing, empty or malformed."""


class Source:
    """Random access to encoded images: ``classes``, ``labels`` (one per image), ``name(i)``,
    ``read(i) -> bytes``."""

    classes: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, i: int) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, i: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError


class FolderSource(Source):
    """``root/<class>/<image>``; classes in sorted order, images sorted by name."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: not a folder of class sub-folders or an .lmdb")
        dirs = sorted(d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        self.classes, self.labels, self.paths = [], [], []
        for d in dirs:
            files = sorted(
                f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            )
            if files:
                self.classes.append(d.name)
                self.paths += files
                self.labels += [len(self.classes) - 1] * len(files)
        if len(self.classes) < 2:
            raise DataError(
                f"{self.root}: found {len(self.classes)} class sub-folder(s) with images; need 2+"
            )

    def name(self, i: int) -> str:
        return str(self.paths[i].relative_to(self.root))

    def read(self, i: int) -> bytes:
        return self.paths[i].read_bytes()


def encode_record(label: int, name: str, data: bytes) -> bytes:
    """LMDB value: label (uint32), name length (uint16), name (UTF-8; a file name that is not
    UTF-8 keeps its bytes), encoded image."""
    raw = name.encode("utf-8", "surrogateescape")
    return struct.pack("<IH", label, len(raw)) + raw + data


def _decode_record(value: bytes) -> tuple[int, str, bytes]:
    label, n = struct.unpack_from("<IH", value)
    return label, value[6 : 6 + n].decode("utf-8", "surrogateescape"), value[6 + n :]


_ENVIRONMENTS: dict[tuple[str, int], object] = {}


def _environment(path: Path):
    """The process's one read-only LMDB environment for ``path`` (LMDB refuses a second open of
    the same file in one process, which copies of a source, e.g. a DataLoader's, would make)."""
    import lmdb

    key = (str(path.resolve()), os.getpid())
    if key not in _ENVIRONMENTS:
        try:
            _ENVIRONMENTS[key] = lmdb.open(
                str(path), readonly=True, lock=False, readahead=False, subdir=True
            )
        except lmdb.Error as e:
            raise DataError(f"{path}: cannot open LMDB ({e})") from e
    return _ENVIRONMENTS[key]


class LmdbSource(Source):
    """An LMDB written by :func:`impasto.train.pack.write_lmdb` (keys ``%08d``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._env = None
        self._pid = None
        with self._txn() as txn:
            meta = txn.get(META_KEY)
            if meta is None:
                raise DataError(f"{self.path}: an LMDB without impasto's metadata")
            info = json.loads(meta)
        self.classes = list(info["classes"])
        self.labels = list(info["labels"])

    def _txn(self):
        if self._env is None or self._pid != os.getpid():  # one environment per process
            self._env = _environment(self.path)
            self._pid = os.getpid()
        return self._env.begin(buffers=False)

    def __getstate__(self):
        return {**self.__dict__, "_env": None, "_pid": None}

    def _record(self, i: int) -> tuple[int, str, bytes]:
        with self._txn() as txn:
            value = txn.get(b"%08d" % i)
        if value is None:
            raise DataError(f"{self.path}: record {i} missing")
        return _decode_record(value)

    def name(self, i: int) -> str:
        return self._record(i)[1]

    def read(self, i: int) -> bytes:
        return self._record(i)[2]


def open_source(path: str | os.PathLike) -> Source:
    """An LMDB (a folder holding ``data.mdb``) or an image folder."""
    p = Path(path)
    if (p / "data.mdb").is_file():
        return LmdbSource(p)
    if not p.exists():
        raise DataError(f"{p}: no such data folder or LMDB")
    return FolderSource(p)


def decode(data: bytes, size: int) -> np.ndarray:
    """Encoded image -> ``(size, size, 3)`` uint8 RGB, resized by linear interpolation.

    Raises:
        Exception: whatever PIL raises for a broken file (callers skip the image).
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


@dataclass(frozen=True)
class Augment:
    """``crop``: resize to ``size * 8 / 7`` then take a random ``size`` crop (centre crop when
    evaluating), as ImageNet's 256 -> 224; ``flip``: random horizontal flips."""

    crop: bool = False
    flip: bool = False


class ImageDataset(torch.utils.data.Dataset):
    """Items ``(image (3, size, size) normalised float32 | None, label, name)``."""

    def __init__(
        self, source: Source, indices, size: int, mean, std, augment: Augment = Augment(),
        train: bool = True, seed: int = 0,
    ) -> None:  # fmt: skip
        self.source, self.indices, self.size = source, list(indices), size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.augment, self.train, self.seed, self.epoch = augment, train, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        idx = self.indices[i]
        label = self.source.labels[idx]
        try:
            big = round(self.size * 8 / 7) if self.augment.crop else self.size
            img = decode(self.source.read(idx), big)
        except Exception:  # noqa: BLE001 - any broken image is skipped and reported
            return None, label, self.source.name(idx)
        rng = np.random.default_rng((self.seed, self.epoch, idx))
        if self.augment.crop:
            off = big - self.size
            y, x = rng.integers(0, off + 1, 2) if self.train else (off // 2, off // 2)
            img = img[y : y + self.size, x : x + self.size]
        if self.augment.flip and self.train and rng.random() < 0.5:
            img = img[:, ::-1]
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255.0
        return (x - self.mean) / self.std, label, None


def collate(batch):
    """``(images (N, 3, H, W), labels (N,), names of skipped images)``."""
    good = [(x, y) for x, y, _ in batch if x is not None]
    bad = [name for x, _, name in batch if x is None]
    if not good:
        return None, None, bad
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good]), bad


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded held-out split: ``(train, validation)`` index lists (validation >= 1 image when
    ``val_fraction > 0``)."""
    perm = np.random.default_rng((seed, 7)).permutation(n)
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())


def compute_stats(
    source: Source, indices, size: int, limit: int = STATS_IMAGES, seed: int = 0
) -> tuple[tuple[float, ...], tuple[float, ...], list[str]]:
    """Per-channel mean and standard deviation of RGB in [0, 1] over (up to ``limit`` of) the
    training images, and the names of images that could not be decoded."""
    indices = list(indices)
    if len(indices) > limit:
        pick = np.random.default_rng((seed, 11)).choice(len(indices), limit, replace=False)
        indices = [indices[i] for i in sorted(pick)]
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count, bad = 0, []
    for idx in indices:
        try:
            img = decode(source.read(idx), size).reshape(-1, 3).astype(np.float64) / 255.0
        except Exception:  # noqa: BLE001
            bad.append(source.name(idx))
            continue
        total += img.sum(0)
        total_sq += (img * img).sum(0)
        count += img.shape[0]
    if count == 0:
        raise DataError("no readable images to compute the normalisation from")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 1e-12))
    std = np.maximum(std, 1e-3)
    return tuple(mean.tolist()), tuple(std.tolist()), bad
