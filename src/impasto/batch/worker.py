"""One batch worker: a loaded network (one :class:`impasto.api.RunCache`) that runs jobs.

The same class serves the local backend (in the driver's process or in a worker process) and the
Ray backend (as an actor), so both paint identical pictures from identical jobs. A worker writes
its output file itself (atomically) and returns the job's manifest record; it never raises for a
job's failure, it reports it.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from ..api import RunCache, Stylizer
from ..errors import Cancelled, ImpastoError
from ..image import LOSSY_FORMATS, OUTPUT_FORMATS, FileOptions
from ..settings import Settings, StyleInput
from ..version import __version__
from .jobs import Job, file_digest

__all__ = ["Worker", "record_of", "failed_record"]

# When the photo changes, its decoded image and content targets are dropped so a long batch's
# memory stays flat; the encoder and the paintings' style targets stay.


def record_of(job: Job) -> dict[str, Any]:
    """The manifest fields every record of ``job`` has."""
    return {
        "id": job.id,
        "output": job.name or None,
        **job.describe(),
        "seed": job.seed if job.error is None else None,
        "settings": job.settings or None,
        "version": __version__,
    }


def failed_record(job: Job, reason: str, **extra: Any) -> dict[str, Any]:
    """A ``failed`` record for ``job`` with its one-line reason."""
    now = time.time()
    return {
        **record_of(job),
        "status": "failed",
        "error": reason,
        "started": now,
        "finished": now,
        "elapsed_s": 0.0,
        **extra,
    }


def _final_losses(history: list[dict]) -> dict[str, float]:
    if not history:
        return {}
    last = history[-1]
    return {k: v for k, v in last.items() if k not in ("step", "scale", "elapsed")}


class Worker:
    """Runs jobs with one network kept loaded.

    Args:
        threads: torch intra-op threads for this process (None: leave torch's default).
        device_index: CUDA device for this worker (one worker per GPU), or None.
    """

    def __init__(self, threads: int | None = None, device_index: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        if device_index is not None and torch.cuda.is_available():
            torch.cuda.set_device(device_index)
        self.cache = RunCache()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._photo: str | None = None

    def _trim(self, content: str) -> None:
        previous, self._photo = self._photo, content
        if previous is None or previous == content:
            return
        self.cache.forget(previous)

    def run(
        self, job: Job, outdir: str, file: FileOptions | None = None, cancel: Any = None
    ) -> dict[str, Any]:
        """Paint ``job`` into ``outdir/job.name``, written with ``file``'s options; return its
        manifest record.

        ``cancel`` (a ``threading.Event``) stops the job mid-run: its record says
        ``"cancelled"``, nothing is written, and a re-run of the batch does it again.
        """
        started = time.time()
        record = record_of(job)
        try:
            if job.error is not None:
                raise ImpastoError(job.error)
            self._trim(job.content)
            settings = Settings.from_dict(job.settings)
            styles = [StyleInput(s.path, weight=s.weight, scale=s.scale) for s in job.styles]
            result = Stylizer(settings).run(job.content, styles, cache=self.cache, cancel=cancel)
            path = os.path.join(outdir, job.name)
            f = file or FileOptions()
            lossy = OUTPUT_FORMATS.get(os.path.splitext(path)[1].lower()) in LOSSY_FORMATS
            result.save(path, bits=f.bits, quality=f.quality if lossy else None, dpi=f.dpi)
            record.update(
                status="done", sha256=file_digest(path), final_losses=_final_losses(result.history)
            )
        except Cancelled:
            record.update(status="cancelled", error="cancelled while running")
        except ImpastoError as e:
            record.update(status="failed", error=str(e))
        except Exception as e:  # noqa: BLE001 - one job's bug must not end the batch
            record.update(status="failed", error=f"internal error: {type(e).__name__}: {e}")
        finished = time.time()
        record.update(
            started=round(started, 3),
            finished=round(finished, 3),
            elapsed_s=round(finished - started, 3),
            worker=self.name,
        )
        return record
