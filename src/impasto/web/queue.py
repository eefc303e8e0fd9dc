"""The job queue: one worker thread per device runs jobs one at a time, in submission order.

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
    """

    def __init__(self, store: Store, runner: JobRunner) -> None:
        self.store = store
        self.runner = runner
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
            self._started = False

    def add(self, job: JobRecord) -> None:
        """Queue a new job (kept in the store only, while the queue is not started)."""
        if self._started:
            self._enqueue(job)

    def _enqueue(self, job: JobRecord) -> None:
        with self._cond:
            self._queues.setdefault(job.device, []).append(job.id)
            worker = self._workers.get(job.device)
            if worker is None or not worker.is_alive():
                worker = threading.Thread(
                    target=self._work, args=(job.device,), name=f"impasto-{job.device}", daemon=True
                )
                self._workers[job.device] = worker
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
            job = self.store.get_job(job_id)
            if job is None or job.status != "queued":
                return
            self._notify_waiting(job.device)
            self.runner.run(job, live, lambda: self._stopping)
        finally:
            with self._cond:
                self._live.pop(job_id, None)

    def _notify_waiting(self, device: str) -> None:
        with self._cond:
            waiting = list(self._queues.get(device, []))
        for job_id in waiting:
            self.runner.notify(job_id, True)

    def cancel(self, job: JobRecord) -> JobRecord:
        """Cancel a queued or running job (a finished one is returned unchanged)."""
        with self._cond:
            queue = self._queues.get(job.device, [])
            live = self._live.get(job.id)
            if job.id in queue:
                queue.remove(job.id)
            elif live is not None:
                live.cancel.set()
                return job
            elif job.status != "queued":
                return job
        job = self.store.update_job(job.id, status="cancelled", finished=time.time())
        self.runner.notify(job.id, True)
        self._notify_waiting(job.device)
        return job

    def position(self, job: JobRecord) -> int | None:
        """1-based place in its device's queue (1 = next), or None when not waiting."""
        with self._cond:
            queue = self._queues.get(job.device, [])
            return queue.index(job.id) + 1 if job.id in queue else None

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
