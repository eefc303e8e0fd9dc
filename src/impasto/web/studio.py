"""The studio's parts wired together, and its use cases: submit, re-run, resume, cancel, delete
(of jobs, and of batches: several photos x paintings queued as one entry).

One :class:`Studio` per app: the store, the event bus, the speed meter, the job runner and the
queue. The HTTP routes reach it through FastAPI dependencies (:mod:`impasto.web.deps`).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from ..plan import check_size
from ..settings import Settings
from .batch_runner import BatchRunner
from .batches import BatchRecord, BatchStore
from .capacity import ServerMemory
from .config import WebConfig
from .events import EventBus
from .limits import (
    check_batch_rules,
    check_server_rules,
    image_size,
    job_aspect,
    job_work,
    resolve_image,
)
from .lock import DataDirLock
from .queue import JobQueue
from .runner import JobRunner
from .speed import SpeedMeter
from .store import JobRecord, Store
from .views import UNFINISHED, batch_view, job_view

__all__ = ["Studio", "resume_settings"]


def resume_settings(settings: dict[str, Any], progress: dict[str, Any]) -> dict[str, Any]:
    """Settings of a job that continues an unfinished one from its partial image.

    The partial image becomes the start image (passed separately, as ``init_file``); the
    pyramid is switched off (the partial already holds the coarse structure) and only the
    full-size iterations not yet done are planned (at least one).
    """
    out = dict(settings)
    iterations = int(settings.get("iterations", 0))
    total = int(progress.get("total_steps") or iterations)
    step = int(progress.get("step") or 0)
    coarse = max(0, total - iterations)
    done_at_full = max(0, step - coarse)
    out.update(iterations=max(1, iterations - done_at_full), pyramid_start=0, init="noise")
    return out


class Studio:
    """The web studio's state and use cases.

    Args:
        config: limits and the data directory.
        lock: the data directory's lock, already held (the store is opened after it).
    """

    def __init__(self, config: WebConfig, lock: DataDirLock) -> None:
        self.config = config
        self.lock = lock
        self.memory = ServerMemory(config.max_memory, config.max_size)
        self.capacity = self.memory.default  # on the server's default device
        self.store = Store(config.data_dir)
        self.bus = EventBus()
        self.speed = SpeedMeter(self.store.data_dir / "speed.json")
        self.runner = JobRunner(
            self.store,
            self.speed,
            self.publish,
            preview_every=config.preview_every,
            weights=config.weights,
            capacity=self.memory.on,
        )
        self.batches = BatchStore(self.store.data_dir)
        self.batch_runner = BatchRunner(
            self.store,
            self.batches,
            self.publish,
            self.runner.lock,
            config.weights,
            capacity=self.memory.on,
        )
        self.queue = JobQueue(self.store, self.runner, self.batch_runner)

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Take the lock (again, after a stop), then recover and run the queued jobs, then
        the batches left queued, running or interrupted (their done jobs are skipped)."""
        self.lock.acquire()
        self.bus.reopen()
        if self.config.run_jobs:
            self.queue.start()
            for rec in self.batches.recover():
                self.queue.add_batch(rec.id, rec.device)

    def stop(self) -> None:
        """End the event streams, interrupt running jobs, release the lock."""
        self.bus.close()
        self.queue.stop()
        self.lock.release()

    # ---------------------------------------------------------------------------- views

    def view(self, job: JobRecord) -> dict[str, Any]:
        """The API's JSON view of a job."""
        estimate = None
        if job.status == "queued":
            try:
                estimate = self.speed.estimate(job.device, self.job_work(job)[0])
            except SettingsError:
                estimate = None
        return job_view(
            job,
            live=self.queue.live(job.id),
            position=self.queue.position(job),
            files=self.store.get_file,
            estimate=estimate,
            resumed=job.status in UNFINISHED and self.store.resumed_by(job.id) is not None,
        )

    def job_work(self, job: JobRecord) -> tuple[float, int]:
        """A stored job's (megapixel-iterations, iterations): :func:`~.limits.job_work` at the
        aspect ratio of its image (:func:`~.limits.job_aspect`)."""
        aspect = job_aspect(self.store, job.content, job.styles)
        return job_work(Settings.from_dict(job.settings), aspect)

    def batch_view(self, rec: BatchRecord) -> dict[str, Any]:
        """The API's JSON view of a batch, with the state of each of its jobs."""
        return batch_view(
            rec,
            live=self.queue.live(rec.id),
            position=self.queue.position_of(rec.device, rec.id),
            records=self.batches.records(rec.id),
            files=self.store.get_file,
        )

    def publish(self, job_id: str, status_change: bool) -> None:
        """Send a job's or batch's view to its followers (and to everyone on a status
        change)."""
        topics = [job_id, None] if status_change else [job_id]
        job = self.store.get_job(job_id)
        if job is not None:
            self.bus.publish(self.view(job), topics)
            return
        batch = self.batches.get(job_id)
        if batch is not None:
            self.bus.publish(self.batch_view(batch), topics)

    # ---------------------------------------------------------------------------- use cases

    def check(
        self, content: str | None, styles: list[dict[str, Any]], settings: Settings
    ) -> tuple[str, float, int]:
        """Check a job against this server: its images exist, its device is here, it is
        within the limits. Returns (device type, work in megapixel-iterations, iterations).

        Raises:
            SettingsError: with a one-line message naming the problem.
        """
        if content is None and not styles:
            raise SettingsError("nothing to do: give a content image, a style image, or both")
        for ref in [content, *(s["image"] for s in styles)]:
            if ref is not None:
                resolve_image(self.store, ref)
        aspect = job_aspect(self.store, content, styles)
        check_size(settings, aspect, has_content=content is not None, has_style=bool(styles))
        cap = self.memory.on(settings.device)
        return cap.device, *check_server_rules(settings, aspect, self.config, cap)

    def submit(
        self,
        content: str | None,
        styles: list[dict[str, Any]],
        settings: Settings,
        **origin: Any,
    ) -> JobRecord:
        """Check and queue a job; a missing seed is drawn now, so a re-run reproduces it.

        Args:
            origin: ``init_file`` (resume), ``parent`` and ``origin`` of the store's job.
        """
        device, _, _ = self.check(content, styles, settings)
        if origin.get("init_file") is not None:
            resolve_image(self.store, origin["init_file"], kinds=("partial",))
        if settings.seed is None:
            settings = settings.replace(seed=random.SystemRandom().randrange(2**31))
        job = self.store.create_job(
            device=device,
            settings=settings.to_dict(),
            content=content,
            styles=[{"image": s["image"], "weight": float(s["weight"])} for s in styles],
            **origin,
        )
        self.queue.add(job)
        self.publish(job.id, True)
        return job

    def rerun(self, job: JobRecord, settings: Settings) -> JobRecord:
        """A new job with the inputs of ``job`` and ``settings``."""
        return self.submit(
            job.content,
            job.styles,
            settings,
            init_file=job.init_file,
            parent=job.id,
            origin="rerun",
        )

    def resume(self, job: JobRecord, settings: Settings) -> JobRecord:
        """A new job that continues ``job`` from its partial image with ``settings``."""
        return self.submit(
            job.content,
            job.styles,
            settings,
            init_file=job.partial_file,
            parent=job.id,
            origin="resume",
        )

    def cancel(self, job: JobRecord) -> JobRecord:
        """Cancel a queued or running job."""
        return self.queue.cancel(job)

    def delete(self, job: JobRecord) -> None:
        """Delete a finished job with its result and partial image."""
        self.store.delete_job(job.id)
        self.bus.publish({"id": job.id, "status": "deleted"}, [job.id, None])

    def partial_path(self, job: JobRecord) -> Path | None:
        """The file of an unfinished job's last image, if any."""
        rec = self.store.get_file(job.partial_file) if job.partial_file else None
        path = self.store.path_of(rec) if rec is not None else None
        return path if path is not None and path.is_file() else None

    # ---------------------------------------------------------------------------- batches

    def check_batch(
        self, contents: list[str], styles: list[str], settings: Settings
    ) -> tuple[str, float, int]:
        """Check a batch against this server: its images exist, every job is within the
        limits and all its jobs together within ``max_work``. Repeated images are counted once,
        as the batch runs them. Returns (device type, work, number of jobs).

        Raises:
            SettingsError: with a one-line message naming the problem.
        """
        contents, styles = list(dict.fromkeys(contents)), list(dict.fromkeys(styles))
        for ref in [*contents, *styles]:
            resolve_image(self.store, ref)
        sizes = [image_size(self.store, ref) for ref in contents]
        for size in set(sizes):
            check_size(settings, size, has_content=True, has_style=True)
        aspects = [size for size in sizes for _ in styles]  # one per job
        cap = self.memory.on(settings.device)
        return cap.device, check_batch_rules(settings, aspects, self.config, cap), len(aspects)

    def submit_batch(
        self, contents: list[str], styles: list[str], settings: Settings
    ) -> BatchRecord:
        """Check and queue a batch (every photo with every painting) as one entry."""
        contents, styles = list(dict.fromkeys(contents)), list(dict.fromkeys(styles))
        device, _, _ = self.check_batch(contents, styles, settings)
        _, plan = self.batch_runner.plan(contents, styles, settings)
        rec = self.batches.create(
            device=device,
            settings=settings.to_dict(),
            contents=contents,
            styles=styles,
            plan=plan,
        )
        self.queue.add_batch(rec.id, device)
        self.publish(rec.id, True)
        return rec

    def cancel_batch(self, rec: BatchRecord) -> BatchRecord:
        """Cancel a queued batch now, or stop a running one after its current job."""
        state = self.queue.cancel_entry(rec.device, rec.id)
        if state == "signalled" or (state == "idle" and rec.status != "queued"):
            return rec
        rec = self.batches.update(
            rec.id, status="cancelled", finished=time.time(), error="cancelled before it ran"
        )
        self.publish(rec.id, True)
        self.queue.notify_waiting(rec.device)
        return rec

    def resume_batch(self, rec: BatchRecord) -> BatchRecord:
        """Queue an unfinished batch again: its done jobs are skipped, the others run."""
        rec = self.batches.update(rec.id, status="queued", finished=None, error=None)
        self.queue.add_batch(rec.id, rec.device)
        self.publish(rec.id, True)
        return rec

    def delete_batch(self, rec: BatchRecord) -> None:
        """Delete a finished batch with its results."""
        self.batches.delete(rec.id)
        self.bus.publish({"id": rec.id, "status": "deleted"}, [rec.id, None])
