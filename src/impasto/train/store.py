"""A training run's files, all written atomically: ``checkpoint.pt`` (the latest state, enough to
resume exactly and to export) and ``metrics.jsonl`` / ``metrics.csv`` (one row per epoch)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import torch

from ..atomic import atomic_file
from ..errors import ImpastoError

__all__ = ["CHECKPOINT", "METRICS", "read_checkpoint", "write_checkpoint", "write_metrics"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


class CheckpointError(ImpastoError):
    """A training checkpoint is missing or unreadable."""


def write_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it."""
    with atomic_file(path) as f:
        torch.save(state, f)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint file, or the ``checkpoint.pt`` inside a run folder."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{p}: no such checkpoint") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for foreign files
        raise CheckpointError(
            f"{p}: not an impasto training checkpoint ({type(e).__name__})"
        ) from e
    if not isinstance(state, dict) or "model" not in state or "arch" not in state:
        raise CheckpointError(f"{p}: not an impasto training checkpoint")
    return state


def write_metrics(run_dir: str | os.PathLike, rows: list[dict]) -> None:
    """All epochs so far as ``metrics.jsonl`` and ``metrics.csv`` (rewritten whole, so a resumed
    run never repeats a row)."""
    d = Path(run_dir)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    with atomic_file(d / METRICS, "w") as f:
        f.write(text)
    keys = list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], list)))
    buf = io.StringIO()
    w = csv.DictWriter(buf, keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    with atomic_file(d / "metrics.csv", "w") as f:
        f.write(buf.getvalue())
