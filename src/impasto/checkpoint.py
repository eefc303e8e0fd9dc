"""Checkpoints of long runs: everything needed to continue exactly as if never interrupted.

A checkpoint holds the image and the optimiser's whole state (L-BFGS history included, see
:meth:`impasto.optimise.Descent.state_dict`), the pyramid level and the iterations done there,
the settings, the seed, the random number generators' states and the identities (SHA-256) of the
inputs, so that a resumed run can refuse inputs that changed. It is written with
:func:`torch.save` to a temporary file in the same directory and renamed over the target, so a
crash while writing never leaves a half-written checkpoint; it is read with
``weights_only=True`` (no code runs on load).
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_file, unwritable
from .errors import CheckpointError
from .inputs import resolve_input

__all__ = [
    "DEFAULT_EVERY",
    "FORMAT",
    "Autosave",
    "Checkpoint",
    "CheckpointError",
    "check_inputs",
    "file_digest",
    "identity",
    "input_identities",
    "load_checkpoint",
    "restore_rng",
    "rng_state",
    "save_checkpoint",
]

#: Seconds between periodic checkpoints by default.
DEFAULT_EVERY = 300.0
#: Bumped when the layout changes; older files are refused with a clear message.
FORMAT = 1
_MAGIC = "impasto-checkpoint"


@dataclass
class Checkpoint:
    """The state of a run between two iterations.

    Attributes:
        settings: ``Settings.resolved()`` of the run (the weights in use filled in).
        seed: the run's seed.
        level: the pyramid scale being optimised (0 = coarsest).
        iteration: iterations done at that scale.
        descent: :meth:`impasto.optimise.Descent.state_dict` (the image is its ``x``).
        rng: :func:`rng_state` when the checkpoint was taken.
        inputs: ``{name: identity}`` of every input (:func:`identity`), e.g. ``content``,
            ``style0`` ...
        extra: anything else the engine wants back (history, elapsed time ...); plain data.
    """

    settings: dict[str, Any]
    seed: int
    level: int
    iteration: int
    descent: dict[str, Any]
    rng: dict[str, Any]
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def rng_state() -> dict[str, Any]:
    """The states of Python's, torch's and (if present) every CUDA device's generators."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Put back the generators' states saved by :func:`rng_state`."""
    random.setstate(_as_tuple(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes, read 1 MiB at a time; raises OSError when it cannot be
    read."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def identity(source: Any) -> dict[str, Any]:
    """What identifies an input: its SHA-256 (of the file's bytes, or of a tensor's or PIL
    image's pixels) with its name and size for messages."""
    h = hashlib.sha256()
    if isinstance(source, (str, os.PathLike)):
        path = Path(resolve_input(source) if isinstance(source, str) else source)  # example:
        try:
            digest = file_digest(path)
        except OSError as e:
            raise CheckpointError(f"cannot read input {path}: {e.strerror or e}") from None
        return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest}
    if isinstance(source, torch.Tensor):
        t = source.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return {"name": "<tensor>", "shape": list(t.shape), "sha256": h.hexdigest()}
    if hasattr(source, "tobytes") and hasattr(source, "mode"):  # a PIL image
        h.update(f"{source.mode} {source.size}".encode())
        h.update(source.tobytes())
        return {"name": "<image>", "size": list(source.size), "sha256": h.hexdigest()}
    raise CheckpointError(f"cannot identify an input of type {type(source).__name__}")


def input_identities(
    content: Any, styles: Sequence[Any], regions: Sequence[Any], weights: Any = None
) -> dict:
    """``{name: identity}`` of a run's inputs: ``content``, ``style0`` ... (each style's
    ``image``), per region ``region0.mask`` and ``region0.style``, and the ``weights`` file
    when one is given (the bundled weights come with the package)."""
    out: dict[str, dict[str, Any]] = {}
    if weights is not None:
        out["weights"] = identity(weights)
    if content is not None:
        out["content"] = identity(content)
    for i, st in enumerate(styles):
        out[f"style{i}"] = identity(st.image)
    for i, r in enumerate(regions):
        out[f"region{i}.mask"] = identity(r.mask)
        if r.style is not None:
            out[f"region{i}.style"] = identity(r.style.image)
    return out


_RECORDED_LATER = ("weights",)  # inputs checkpoints of earlier releases did not identify


def input_label(key: str) -> str:
    """How a message names the input recorded as ``key``: ``style0`` is "painting 1",
    ``region1.mask`` "region 2's mask", ``content`` "the photo"."""
    if key == "content":
        return "the photo"
    if key == "weights":
        return "the weights file"
    kind, _, part = key.partition(".")
    for prefix, word in (("style", "painting"), ("region", "region")):
        if kind.startswith(prefix) and kind[len(prefix):].isdigit():
            label = f"{word} {int(kind[len(prefix):]) + 1}"
            return f"{label}'s {'painting' if part == 'style' else part}" if part else label
    return repr(key)


def check_inputs(saved: Mapping[str, Mapping], current: Mapping[str, Mapping]) -> None:
    """Refuse to resume with other inputs than the checkpoint's.

    Raises:
        CheckpointError: naming the first input that was added, removed or changed.
    """
    for key in sorted(set(saved) | set(current)):
        if key in _RECORDED_LATER and key not in saved:
            continue  # a checkpoint of an earlier release: nothing to compare with
        if key not in current:
            raise CheckpointError(
                f"the checkpoint's run had {input_label(key)} ({saved[key].get('name')}), "
                "which is missing now"
            )
        if key not in saved:
            raise CheckpointError(
                f"{input_label(key)} ({current[key].get('name')}) was not part of the "
                "checkpoint's run"
            )
        if saved[key]["sha256"] != current[key]["sha256"]:
            now, then = current[key].get("name"), saved[key].get("name")
            raise CheckpointError(
                f"{input_label(key)} ({now}) has changed since the checkpoint was made"
                if now == then
                else f"{input_label(key)} ({now}) differs from the one the checkpoint was made "
                f"with ({then})"
            )


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise CheckpointError(f"checkpoint directory {path.parent} does not exist")
    payload = {"magic": _MAGIC, "format": FORMAT, **asdict(ckpt)}
    with atomic_file(path) as f:
        torch.save(payload, f)


def _check_crc(path: Path) -> None:
    """Refuse a checkpoint whose bytes changed since it was written: torch.load does not check
    the CRC-32 its zip archive keeps of every entry, so flipped bytes resumed silently."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        return  # not a zip archive: torch.load says what it is
    except Exception:  # a damaged entry header (zlib.error, ...): as a bad CRC
        bad = "?"
    if bad is not None:
        raise CheckpointError(f"{path} is damaged (entry {bad} fails its CRC check)")


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors onto ``map_location``).

    Raises:
        CheckpointError: missing file, not a checkpoint, or another format version.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; give the checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    _check_crc(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path} is not a readable impasto checkpoint") from None
    if not isinstance(data, dict) or data.get("magic") != _MAGIC:
        raise CheckpointError(f"{path} is not an impasto checkpoint")
    if data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {data.get('format')}; this impasto reads format {FORMAT}"
        )
    data.pop("magic")
    data.pop("format")
    return Checkpoint(**data)


class Autosave:
    """Decides when a periodic checkpoint is due: every ``every`` seconds of ``clock``.

    Args:
        path: where checkpoints go (each one replaces the last).
        every: seconds between checkpoints (``0`` or less: never by time).
        clock: monotonic seconds (injectable for tests).
        meta: plain data stored in every checkpoint (``extra["caller"]``), e.g. the command
            line that resumes the run.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        every: float = DEFAULT_EVERY,
        clock: Callable[[], float] = time.monotonic,
        meta: Any = None,
    ) -> None:
        self.path = Path(path)
        why = unwritable(self.path)
        if why:
            raise CheckpointError(f"checkpoint {self.path}: {why}")
        self.every = every
        self.meta = meta
        self.clock = clock
        self.last = clock()
        self.saved = 0

    def due(self) -> bool:
        """Whether ``every`` seconds have passed since the start or the last save."""
        return self.every > 0 and self.clock() - self.last >= self.every

    def save(self, make: Callable[[], Checkpoint]) -> None:
        """Write ``make()`` now (also when not due, e.g. on Ctrl-C) and restart the clock."""
        save_checkpoint(self.path, make())
        self.last = self.clock()
        self.saved += 1
