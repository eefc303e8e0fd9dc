"""Persistent batches of the web studio: one folder per batch under ``data_dir/batches``.

Layout::

    batches/<id>/batch.json     the request and the batch's status (written atomically)
    batches/<id>/out/           the batch's output folder: results and ``manifest.jsonl``

A batch is several photos x several paintings with one settings object, queued as one entry.
Its jobs' outcomes live in the output folder's manifest, written by
:func:`impasto.batch.run_batch` (which skips the jobs already done when a batch runs again);
``batch.json`` holds only what the manifest does not: the inputs as image references, the
settings as submitted, the planned jobs and the batch's own status.

Statuses are the jobs' (``queued``, ``running``, ``done``, ``failed``, ``cancelled``,
``interrupted``); ``failed`` means the batch ran to its end with some jobs failed.
:meth:`BatchStore.recover` applies the restart policy: batches found ``queued``, ``running``
(a crash) or ``interrupted`` (a stop) are queued again; their done jobs are skipped.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_file
from ..batch import manifest
from .store import is_id, new_id

__all__ = ["BatchRecord", "BatchStore", "RESUMABLE"]

RESUMABLE = frozenset({"queued", "running", "interrupted"})
_UPDATABLE = frozenset({"status", "started", "finished", "error", "plan", "elapsed", "runs"})


@dataclass(frozen=True)
class BatchRecord:
    """One batch as stored.

    Attributes:
        id: generated id (32 hex digits).
        status: as a job's (see the module docstring).
        device: the device type it runs on.
        settings: ``Settings.to_dict()`` as submitted (a missing seed stays None: each job's
            seed is then derived from its id, so a re-run paints the same pictures).
        contents, styles: image references (file ids or ``example:NAME``).
        created, started, finished: Unix times (None until reached).
        error: one-line reason of a failed, cancelled or interrupted batch.
        plan: ``[{"id", "content", "style", "name"}, ...]``: the jobs, photo by photo.
        elapsed: seconds spent running, over all runs.
        runs: how many times it was started (more than one after a resume).
    """

    id: str
    status: str
    device: str
    settings: dict[str, Any]
    contents: list[str]
    styles: list[str]
    created: float
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    plan: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0
    runs: int = 0


class BatchStore:
    """Batches under ``data_dir/batches``. Thread-safe.

    Args:
        data_dir: the studio's data directory.
    """

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "batches"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()

    def folder(self, batch_id: str) -> Path:
        """The batch's folder (``batch_id`` must be an id)."""
        if not is_id(batch_id):
            raise ValueError("not a batch id")
        return self.root / batch_id

    def outdir(self, batch_id: str) -> Path:
        """The batch's output folder (the ``outdir`` of :func:`impasto.batch.run_batch`)."""
        return self.folder(batch_id) / "out"

    def _write(self, rec: BatchRecord) -> None:
        folder = self.folder(rec.id)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(folder / "batch.json", "w") as fh:
            json.dump(dataclasses.asdict(rec), fh)

    def create(self, **fields: Any) -> BatchRecord:
        """Store a new ``queued`` batch and return it."""
        rec = BatchRecord(id=new_id(), status="queued", created=time.time(), **fields)
        with self._lock:
            self._write(rec)
            self.outdir(rec.id).mkdir(exist_ok=True)
        return rec

    def get(self, batch_id: Any) -> BatchRecord | None:
        """The batch ``batch_id``, or None (also for strings that are not ids)."""
        if not is_id(batch_id):
            return None
        try:
            with self._lock:
                data = json.loads((self.folder(batch_id) / "batch.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return BatchRecord(**data)

    def list(self, limit: int = 200) -> list[BatchRecord]:
        """Batches, newest first."""
        found = [self.get(p.name) for p in self.root.iterdir() if is_id(p.name)]
        recs = sorted((r for r in found if r is not None), key=lambda r: r.created, reverse=True)
        return recs[:limit]

    def update(self, batch_id: str, **changes: Any) -> BatchRecord:
        """Set some fields of a batch and return the updated record."""
        bad = set(changes) - _UPDATABLE
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        with self._lock:
            rec = self.get(batch_id)
            if rec is None:
                raise KeyError(batch_id)
            rec = dataclasses.replace(rec, **changes)
            self._write(rec)
        return rec

    def delete(self, batch_id: str) -> None:
        """Remove a batch with its results."""
        with self._lock:
            shutil.rmtree(self.folder(batch_id), ignore_errors=True)

    def records(self, batch_id: str) -> dict[str, dict[str, Any]]:
        """The last manifest record of each of the batch's jobs (by job id)."""
        path = self.outdir(batch_id) / manifest.MANIFEST
        return {rec["id"]: rec for rec in manifest.read(str(path))}

    def recover(self) -> list[BatchRecord]:
        """Apply the restart policy; returns the batches to queue again, oldest first."""
        again = []
        for rec in reversed(self.list(limit=1_000_000)):
            if rec.status in RESUMABLE:
                again.append(self.update(rec.id, status="queued", finished=None))
        return again
