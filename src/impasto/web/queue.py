"""The job queue: one worker thread per device runs jobs one at a time, in submission order.

An entry is a job or a batch (several photos x paintings run by
:class:`~impasto.web.batch_runner.BatchRunner` as one entry); both wait in the same queue.

Cancelling sets the job's :class:`threading.Event` (the engine raises
:class:`impasto.errors.Cancelled` before its next iteration); a queued job is simply taken off
the queue. The resume policy lives in :meth:`start` and :meth:`stop`: stopping cancels running
jobs, which become ``interrupted`` (with their partial image, for a resume); starting marks jobs
left ``running`` by a crash ``interrupted`` and runs the ``queued`` ones again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .runner import JobRunner, LiveJob
from .store import JobRecord, Store
from .views import Live

__all__ = ["JobQueue"]

log = logging.getLogger("impasto.web")


class JobQueue:
    """Queues and worker threads of the studio's jobs.

    Args:
        store: jobs and files.
        runner: runs one job (its lock guards the live state shared with readers).
        batches: runs one batch (a :class:`~impasto.web.batch_runner.BatchRunner`), or None.
    """

    def __init__(self, store: Store, runner: JobRunner, batches: Any = None) -> None:
        self.store = store
        self.runner = runner
        self.batches = batches
        self._batch_ids: set[str] = set()  # queued or running entries that are batches
        self._cond = threading.Condition(runner.lock)
        self._queues: dict[str, list[str]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._live: dict[str, LiveJob] = {}
        self._stopping = False
        self._started = False

    def start(self) -> None:
        """Apply the restart policy and start working on the queued jobs."""
        with self._cond:
            self._stopping = False
            self._started = True
            for job in self.store.recover():
                self._enqueue(job)

    def stop(self, timeout: float = 60.0) -> None:
        """Cancel running jobs (they become ``interrupted``) and stop the workers."""
        with self._cond:
            self._stopping = True
            for live in self._live.values():
                live.cancel.set()
            self._cond.notify_all()
            workers = list(self._workers.values())
        deadline = time.monotonic() + timeout
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._workers = {k: t for k, t in self._workers.items() if t.is_alive()}
            self._queues.clear()
            self._batch_ids.clear()
            self._started = False

    def add(self, job: JobRecord) -> None:
        """Queue a new job (kept in the store only, while the queue is not started)."""
        if self._started:
            self._enqueue(job)

    def add_batch(self, batch_id: str, device: str) -> None:
        """Queue a batch as one entry (kept in its store only, while the queue is not started)."""
        if self._started:
            with self._cond:
                self._batch_ids.add(batch_id)
            self._enqueue_id(device, batch_id)

    def _enqueue(self, job: JobRecord) -> None:
        self._enqueue_id(job.device, job.id)

    def _enqueue_id(self, device: str, entry_id: str) -> None:
        with self._cond:
            self._queues.setdefault(device, []).append(entry_id)
            worker = self._workers.get(device)
            if worker is None or not worker.is_alive():
                worker = threading.Thread(
                    target=self._work, args=(device,), name=f"impasto-{device}", daemon=True
                )
                self._workers[device] = worker
                worker.start()
            self._cond.notify_all()

    def _work(self, device: str) -> None:
        while True:
            with self._cond:
                queue = self._queues.setdefault(device, [])
                while not queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job_id = queue.pop(0)
                live = self._live[job_id] = LiveJob()  # cancellable from here on
            try:
                self._run(job_id, live)
            except Exception:  # pragma: no cover - last resort; the runner records its errors
                log.exception("worker error on job %s", job_id)
            self.runner.notify(job_id, True)
            self._notify_waiting(device)

    def _run(self, job_id: str, live: LiveJob) -> None:
        try:
            with self._cond:
                is_batch = job_id in self._batch_ids
            if is_batch:
                self._run_batch(job_id, live)
                return
            job = self.store.get_job(job_id)
            if job is None or job.status != "queued":
                return
            self._notify_waiting(job.device)
            self.runner.run(job, live, lambda: self._stopping)
        finally:
            with self._cond:
                self._live.pop(job_id, None)
                self._batch_ids.discard(job_id)

    def _run_batch(self, batch_id: str, live: LiveJob) -> None:
        rec = self.batches.batches.get(batch_id)
        if rec is None or rec.status != "queued":
            return
        self._notify_waiting(rec.device)
        self.batches.run(rec, live, lambda: self._stopping)

    def _notify_waiting(self, device: str) -> None:
        with self._cond:
            waiting = list(self._queues.get(device, []))
        for job_id in waiting:
            self.runner.notify(job_id, True)

    def cancel_entry(self, device: str, entry_id: str) -> str:
        """Take a waiting entry off its queue (``"dequeued"``), ask a running one to stop
        (``"signalled"``), or neither (``"idle"``)."""
        with self._cond:
            queue = self._queues.get(device, [])
            if entry_id in queue:
                queue.remove(entry_id)
                self._batch_ids.discard(entry_id)
                return "dequeued"
            live = self._live.get(entry_id)
            if live is not None:
                live.cancel.set()
                return "signalled"
        return "idle"

    def cancel(self, job: JobRecord) -> JobRecord:
        """Cancel a queued or running job (a finished one is returned unchanged)."""
        state = self.cancel_entry(job.device, job.id)
        if state == "signalled" or (state == "idle" and job.status != "queued"):
            return job
        job = self.store.update_job(job.id, status="cancelled", finished=time.time())
        self.runner.notify(job.id, True)
        self._notify_waiting(job.device)
        return job

    def position(self, job: JobRecord) -> int | None:
        """1-based place in its device's queue (1 = next), or None when not waiting."""
        return self.position_of(job.device, job.id)

    def position_of(self, device: str, entry_id: str) -> int | None:
        """1-based place of a job or batch in ``device``'s queue, or None when not waiting."""
        with self._cond:
            queue = self._queues.get(device, [])
            return queue.index(entry_id) + 1 if entry_id in queue else None

    def notify_waiting(self, device: str) -> None:
        """Publish the entries waiting on ``device`` (their places changed)."""
        self._notify_waiting(device)

    def live(self, job_id: str) -> Live | None:
        """A snapshot of a running job's progress, or None."""
        with self._cond:
            live = self._live.get(job_id)
            return live.snapshot() if live is not None else None

    def preview(self, job_id: str) -> bytes | None:
        """The latest in-memory preview PNG of a running job, or None."""
        with self._cond:
            live = self._live.get(job_id)
            return live.png if live is not None else None
