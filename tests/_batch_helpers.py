"""Small inputs and checks shared by the batch tests (tests/test_batch*.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

TINY = {"size": 32, "iterations": 2, "pyramid_start": 0, "device": "cpu"}
TINY_FLAGS = [
    *("--size", "32", "--iterations", "2", "--pyramid-start", "0", "--device", "cpu"),
    *("--workers", "1", "--threads", "1"),
]


def make_image(path: Path, size: tuple[int, int], seed: int) -> Path:
    """A small RGB image: a gradient plus seeded noise (different per seed)."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w, y / h, (x + y) / (w + h)], -1) * 200
    arr = np.clip(base + rng.integers(0, 55, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_inputs(root: Path, n_contents: int = 2, n_styles: int = 2) -> tuple[Path, Path]:
    """Folders ``photos/`` and ``paintings/`` with a few tiny images each."""
    photos, paintings = root / "photos", root / "paintings"
    for i in range(n_contents):
        make_image(photos / f"photo{i}.png", (40, 30), seed=i)
    for i in range(n_styles):
        make_image(paintings / f"paint{i}.png", (32, 32), seed=100 + i)
    return photos, paintings


def records(outdir: Path) -> list[dict]:
    """The manifest's complete records."""
    path = outdir / "manifest.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def pixels(path: Path) -> np.ndarray:
    """Decoded pixels (fails on a truncated file)."""
    with Image.open(path) as im:
        im.load()
        return np.asarray(im)
