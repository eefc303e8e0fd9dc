"""Running one job: the engine call, live progress, previews, partial images and the outcome.

A job's run is :meth:`impasto.api.Stylizer.run` with a callback that keeps the latest progress
and a clamped copy of the image, encodes a preview PNG every ``preview_every`` iterations (and on
the first and last), writes a partial image at most every ``partial_every_s`` seconds (what a
resume starts from, and what an unfinished job offers for download) and reports every change.
Within an iteration of a tiled scale, tile progress (pass, tile i/n) is reported too
(throttled), and the engine's notes (its memory plan and why) are kept in the progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Cancelled, ImpastoError
from ..memory import BUDGET_SETTING, format_bytes
from ..settings import Settings, StyleInput
from .capacity import Capacity, job_budget
from .encode import png_bytes, snapshot, write_partial
from .limits import job_aspect, job_work, resolve_image
from .speed import SpeedMeter
from .store import JobRecord, Store
from .views import Live, finite, input_view

__all__ = ["LiveJob", "JobRunner"]

log = logging.getLogger("impasto.web")

Notify = Callable[[str, bool], None]  # (job id, whether its status changed)
PUBLISH_EVERY_S = 0.1  # progress events (iterations, tiles) at most this often
MAX_NOTES = 50


@dataclass
class LiveJob:
    """In-memory state of a running job (guarded by the queue's lock where shared)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    progress: dict[str, Any] = field(default_factory=dict)
    png: bytes | None = None
    version: int = 0
    image: Any = None  # clamped CPU copy of the latest image (torch.Tensor)
    last_publish: float = 0.0
    last_partial: float = 0.0
    last_db: float = 0.0

    def snapshot(self) -> Live:
        return Live(dict(self.progress), self.version, self.png is not None)


def _tile(tick: Any) -> dict[str, Any]:
    return {
        "scale": tick.scale,
        "step": tick.step,
        "phase": tick.phase,
        "tile": tick.tile,
        "tiles": tick.tiles,
    }


def _progress(it: Any, version: int, previous: dict[str, Any]) -> dict[str, Any]:
    """The progress after an iteration; the notes carry over, and the last tile while the
    scale is the same (the next iteration runs the same tiles)."""
    tile = previous.get("tile")
    return {
        "notes": previous.get("notes", []),
        "tile": tile if tile is not None and tile.get("scale") == it.scale else None,
        "step": it.step,
        "total_steps": it.total_steps,
        "scale": it.scale,
        "n_scales": it.n_scales,
        "size": list(it.size),
        "loss": finite(it.loss),
        "losses": {k: finite(v) for k, v in it.losses.items()},
        "elapsed": finite(it.elapsed),
        "eta": finite(it.eta),
        "version": version,
    }


class JobRunner:
    """Runs queued jobs with the engine, one call at a time per worker thread.

    Args:
        store: jobs and files.
        speed: learns seconds per unit of work from finished jobs.
        notify: called with (job id, status changed) after every change worth showing.
        preview_every: encode a preview every this many iterations.
        partial_every_s: write the partial image at most this often (seconds).
        weights: the server's VGG19 weights file for every job (None: the engine's default).
        capacity: the server's memory on a device by its name (:meth:`ServerMemory.on
            <impasto.web.capacity.ServerMemory.on>`): a job runs within the budget of its own
            device (or within its own ``max_memory`` when lower), and its memory notes name
            where that budget comes from. None: the engine's default.
    """

    def __init__(
        self,
        store: Store,
        speed: SpeedMeter,
        notify: Notify,
        *,
        preview_every: int = 5,
        partial_every_s: float = 2.0,
        weights: str | None = None,
        capacity: Callable[[str], Capacity] | None = None,
    ) -> None:
        if preview_every < 1:
            raise ValueError("preview_every must be >= 1")
        self.store = store
        self.speed = speed
        self.notify = notify
        self.preview_every = preview_every
        self.partial_every_s = partial_every_s
        self.weights = weights
        self.capacity = capacity
        self.lock = threading.RLock()

    def _inputs(self, job: JobRecord) -> tuple[Settings, Any, list[StyleInput]]:
        settings = Settings.from_dict(job.settings)
        if self.weights is not None:
            settings = settings.replace(weights=self.weights)
        if self.capacity is not None:
            budget = self.capacity(job.device).budget
            settings = settings.replace(max_memory=job_budget(settings.max_memory, budget))
        if job.init_file:
            init = resolve_image(self.store, job.init_file, kinds=("partial",))
            settings = settings.replace(init=str(init))
        content = resolve_image(self.store, job.content) if job.content else None
        styles = [
            StyleInput(resolve_image(self.store, s["image"]), weight=s["weight"])
            for s in job.styles
        ]
        return settings, content, styles

    def run(self, job: JobRecord, live: LiveJob, stopping: Callable[[], bool]) -> None:
        """Run ``job`` (status ``queued``) to its end and record the outcome."""
        job = self.store.update_job(
            job.id, status="running", started=time.time(), finished=None, error=None
        )
        self.notify(job.id, True)
        partial = self.store.reserve(".png")
        status, error, result_file = "failed", None, None
        try:
            result_file = self._stylize(job, live, partial)
            status = "done"
        except Cancelled:
            if stopping():
                status, error = "interrupted", "the server stopped while this job was running"
            else:
                status = "cancelled"
        except ImpastoError as exc:
            error = self._named(job, str(exc))
        except Exception as exc:  # engine bug or out of memory: keep the worker alive
            log.exception("job %s failed", job.id)
            error = f"internal error: {type(exc).__name__}: {exc}"
        if status != "done" and live.image is not None:
            try:
                self._save_partial(job, live, partial)
            except Exception:  # pragma: no cover - the job's outcome matters more
                log.exception("could not save the partial image of job %s", job.id)
        with self.lock:
            progress = {**live.progress, "version": live.version}
        self.store.update_job(
            job.id,
            status=status,
            finished=time.time(),
            error=error,
            progress=progress,
            result_file=result_file,
        )

    def _stylize(self, job: JobRecord, live: LiveJob, partial: tuple[str, Any]) -> str:
        from ..api import Stylizer

        settings, content, styles = self._inputs(job)
        callback = _Hooks(self, job, live, partial)
        result = Stylizer(settings).run(content, styles, callback=callback, cancel=live.cancel)
        files = self.store.get_file
        result.inputs = {
            "content": (input_view(job.content, files) or {}).get("name"),
            "styles": [
                {"name": (input_view(s["image"], files) or {}).get("name"), "weight": s["weight"]}
                for s in job.styles
            ],
        }
        result.settings = self._shown(job, settings)
        result_id = self._save_result(job, result)
        self._learn_speed(job, settings, result.elapsed)
        with self.lock:
            live.version += 1
            live.png = None
            live.progress.update(version=live.version, eta=0.0, elapsed=result.elapsed, tile=None)
        return result_id

    def _shown(self, job: JobRecord, settings: Settings) -> Settings:
        """The settings for the result's metadata: file names, no server paths, the job's own
        memory budget."""
        settings = settings.replace(max_memory=job.settings.get("max_memory"))
        if self.weights is not None:
            settings = settings.replace(weights=Path(self.weights).name)
        if job.init_file:
            start = self.store.get_file(job.init_file)
            name = (start.display_name if start is not None else None) or "partial.png"
            settings = settings.replace(init=name)
        return settings

    def _save_result(self, job: JobRecord, result: Any) -> str:
        result_id, result_path = self.store.reserve(".png")
        result.save(result_path)
        self.store.add_file(
            result_id,
            result_path,
            kind="result",
            media_type="image/png",
            display_name=f"impasto-{job.id[:8]}.png",
            width=int(result.image.shape[-1]),
            height=int(result.image.shape[-2]),
        )
        return result_id

    def _learn_speed(self, job: JobRecord, settings: Settings, elapsed: float) -> None:
        try:
            work, _ = job_work(settings, job_aspect(self.store, job.content, job.styles))
        except ImpastoError:
            return
        self.speed.record(job.device, work, elapsed)

    def _on_iterate(self, job: JobRecord, live: LiveJob, it: Any, partial) -> None:
        now = time.monotonic()
        due = it.step == 1 or it.step % self.preview_every == 0 or it.is_last
        image = snapshot(it.image)  # it.image is live and unclamped: keep a clamped copy
        png = png_bytes(image) if due else None
        with self.lock:
            live.image = image
            live.progress = _progress(it, live.version, live.progress)
            if png is not None:
                live.png = png
                live.version += 1
                live.progress["version"] = live.version
        if png is not None and now - live.last_partial >= self.partial_every_s:
            live.last_partial = now
            self._save_partial(job, live, partial)
        if png is not None and now - live.last_db >= 1.0:
            live.last_db = now
            self.store.update_job(job.id, progress=live.progress)
        if png is not None or now - live.last_publish >= PUBLISH_EVERY_S or it.is_last:
            live.last_publish = now
            self.notify(job.id, False)

    def _on_tile(self, job: JobRecord, live: LiveJob, tick: Any) -> None:
        """Keep the tile just done; publish at most every :data:`PUBLISH_EVERY_S` seconds."""
        now = time.monotonic()
        with self.lock:
            live.progress = {**live.progress, "tile": _tile(tick)}
            if now - live.last_publish < PUBLISH_EVERY_S:
                return
            live.last_publish = now
        self.notify(job.id, False)

    def _named(self, job: JobRecord, text: str) -> str:
        """``text`` with the stored file names of the job's uploads (``<id>.jpg``) replaced by
        the names they were uploaded under, as the page shows them."""
        for ref in [job.content, *(s["image"] for s in job.styles)]:
            rec = self.store.get_file(ref) if ref else None
            if rec is not None and rec.display_name:
                text = text.replace(rec.name, rec.display_name)
        return text

    def _on_note(self, job: JobRecord, live: LiveJob, note: Any) -> None:
        """Keep a note of the engine (memory plan, upscaled painting, cropped start image) in
        the progress."""
        text = self._named(job, note.text)
        if note.kind == "memory":
            text = self._budget_named(job, text)
        entry = {"kind": note.kind, "text": text, "warning": bool(note.warning)}
        with self.lock:
            notes = [*live.progress.get("notes", []), entry][-MAX_NOTES:]
            live.progress = {**live.progress, "notes": notes}
        self.notify(job.id, False)

    def _budget_named(self, job: JobRecord, text: str) -> str:
        """The engine's memory note (``memory budget 12.6 GB (max_memory)``) with the budget's
        true source: the engine runs every job with a ``max_memory`` (:meth:`_inputs`), the
        server's budget unless the job's own is lower. Only a lower one is the job's; the
        server's is named as such, and a job's own above it is said to be (it gave way)."""
        own = job.settings.get("max_memory")
        if self.capacity is None:
            return text
        cap = self.capacity(job.device)
        if own and own < cap.budget:
            return text
        source = f"the server's: {cap.source}"
        if own and own > cap.budget:
            source += f"; the job's {BUDGET_SETTING} {format_bytes(own)} is above it"
        return text.replace(f"({BUDGET_SETTING})", f"({source})")

    def _save_partial(self, job: JobRecord, live: LiveJob, partial: tuple[str, Any]) -> None:
        partial_id, partial_path = partial
        with self.lock:
            image, progress = live.image, dict(live.progress)
        if image is None:
            return
        write_partial(
            image, partial_path, {"settings": job.settings, "step": progress.get("step", 0)}
        )
        self.store.add_file(
            partial_id,
            partial_path,
            kind="partial",
            media_type="image/png",
            display_name=f"impasto-{job.id[:8]}-partial.png",
            width=int(image.shape[-1]),
            height=int(image.shape[-2]),
        )
        self.store.update_job(job.id, partial_file=partial_id, progress=progress)


class _Hooks:
    """The engine's callback for one job: iterations, tiles (``on_tile``), notes
    (``on_note``)."""

    def __init__(self, runner: JobRunner, job: JobRecord, live: LiveJob, partial) -> None:
        self.runner, self.job, self.live, self.partial = runner, job, live, partial

    def __call__(self, it: Any) -> None:
        self.runner._on_iterate(self.job, self.live, it, self.partial)

    def on_tile(self, tick: Any) -> None:
        self.runner._on_tile(self.job, self.live, tick)

    def on_note(self, note: Any) -> None:
        self.runner._on_note(self.job, self.live, note)
