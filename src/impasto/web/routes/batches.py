"""Batches: several photos x several paintings with one settings object, queued as one entry;
follow, cancel, resume, delete, and download their results (one by one, or as a zip)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from ..deps import BatchDep, StudioDep
from ..models import BatchEstimateInfo, BatchRequest, BatchView, ErrorBody
from ..store import TERMINAL
from ..studio import Studio
from ..views import input_view
from .events import DOC as EVENTS_DOC
from .events import _response, _stream, sse

__all__ = ["router"]

router = APIRouter(tags=["batches"])
RESUMABLE = ("cancelled", "failed", "interrupted")


@router.post("/api/batches", status_code=201, response_model=BatchView)
def create_batch(req: BatchRequest, studio: StudioDep) -> dict[str, Any]:
    """Queue a batch: every photo in ``contents`` painted in each painting of ``styles``, with
    one ``settings`` object, as ONE queue entry. Settings are validated as for a job; the work
    of all the jobs together must be within the server's ``max_work``."""
    return studio.batch_view(studio.submit_batch(req.contents, req.styles, req.settings))


@router.post("/api/batches/estimate", response_model=BatchEstimateInfo)
def estimate_batch(req: BatchRequest, studio: StudioDep) -> dict[str, Any]:
    """Check a batch as ``POST /api/batches`` would, without queueing it, and estimate its run
    time from this server's measured speed."""
    device, work, jobs = studio.check_batch(req.contents, req.styles, req.settings)
    return {**studio.speed.described(device, work, jobs), "jobs": jobs}


@router.get("/api/batches", response_model=list[BatchView])
def list_batches(studio: StudioDep) -> list[dict[str, Any]]:
    """Batches, newest first."""
    return [studio.batch_view(b) for b in studio.batches.list()]


@router.get("/api/batches/{batch_id}", response_model=BatchView)
def get_batch(batch: BatchDep, studio: StudioDep) -> dict[str, Any]:
    """One batch, with the state of each of its jobs."""
    return studio.batch_view(batch)


@router.get(
    "/api/batches/{batch_id}/events", response_class=StreamingResponse, responses=EVENTS_DOC
)
async def batch_events(batch: BatchDep, studio: StudioDep) -> StreamingResponse:
    """Server-Sent Events of one batch: its view (as ``GET /api/batches/{id}``) at once, then
    whenever one of its jobs starts or ends. The stream ends after the batch's final status,
    or when the server stops."""
    sub = studio.bus.subscribe(batch.id)
    view = studio.batch_view(studio.batches.get(batch.id) or batch)
    first = "retry: 2000\n" + sse(view)
    if view["status"] in TERMINAL:
        studio.bus.unsubscribe(sub)

        async def once():
            yield first

        return _response(once())
    return _response(_stream(studio, sub, first, True))


@router.post("/api/batches/{batch_id}/cancel", response_model=BatchView)
def cancel_batch(batch: BatchDep, studio: StudioDep) -> dict[str, Any]:
    """Cancel a queued batch now, or stop a running one after the job it is running (that job
    finishes and is kept; follow the events)."""
    return studio.batch_view(studio.cancel_batch(batch))


@router.post(
    "/api/batches/{batch_id}/resume",
    response_model=BatchView,
    responses={409: {"model": ErrorBody, "description": "nothing to resume"}},
)
def resume_batch(batch: BatchDep, studio: StudioDep) -> dict[str, Any]:
    """Queue a cancelled, failed or interrupted batch again: its done jobs are skipped, the
    others (failed ones included) run."""
    if batch.status not in RESUMABLE:
        raise HTTPException(409, f"batch is {batch.status}; only {', '.join(RESUMABLE)} resume")
    return studio.batch_view(studio.resume_batch(batch))


@router.delete(
    "/api/batches/{batch_id}",
    status_code=204,
    responses={409: {"model": ErrorBody, "description": "the batch is queued or running"}},
)
def delete_batch(batch: BatchDep, studio: StudioDep) -> Response:
    """Delete a finished batch with its results (uploaded inputs stay)."""
    if batch.status not in TERMINAL:
        raise HTTPException(409, "cancel the batch before deleting it")
    studio.delete_batch(batch)
    return Response(status_code=204)


def _done_outputs(studio: Studio, batch_id: str) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Job id -> (output file, manifest record) of the batch's done jobs whose file exists."""
    outdir = studio.batches.outdir(batch_id)
    out = {}
    for job_id, rec in studio.batches.records(batch_id).items():
        if rec.get("status") == "done" and rec.get("output"):
            path = outdir / os.path.basename(rec["output"])
            if path.is_file():
                out[job_id] = (path, rec)
    return out


@router.get(
    "/api/batches/{batch_id}/jobs/{job_id}/result.png",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}},
)
def get_batch_result(
    batch: BatchDep,
    studio: StudioDep,
    job_id: Annotated[str, PathParam(description="the job's id (from the batch's jobs)")],
    download: bool = False,
) -> FileResponse:
    """The result of one job of a batch (PNG, with the settings in its metadata)."""
    found = _done_outputs(studio, batch.id).get(job_id)
    if found is None:
        raise HTTPException(404, "no result: no such job in this batch, or it is not done")
    path = found[0]
    return FileResponse(
        path,
        media_type="image/png",
        filename=path.name if download else None,
        content_disposition_type="attachment" if download else "inline",
    )


def _public(rec: dict[str, Any], item: dict[str, Any], studio: Studio) -> dict[str, Any]:
    """A manifest record without server paths: inputs by name, the weights by file name."""
    files = studio.store.get_file
    settings = dict(rec.get("settings") or {})
    if settings.get("weights"):
        settings["weights"] = os.path.basename(str(settings["weights"]))
    return {
        **rec,
        "content": (input_view(item.get("content"), files) or {}).get("name"),
        "styles": [{"name": (input_view(item.get("style"), files) or {}).get("name")}],
        "settings": settings,
    }


@router.get(
    "/api/batches/{batch_id}/results.zip",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def get_batch_zip(batch: BatchDep, studio: StudioDep) -> FileResponse:
    """The batch's results so far as a zip: every done job's image and ``manifest.jsonl`` (one
    record per done job: status, seed, settings, timings, final losses)."""
    done = _done_outputs(studio, batch.id)
    if not done:
        raise HTTPException(404, "no results yet")
    plan = {item["id"]: item for item in batch.plan}
    tmp = studio.store.tmp_path()
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        lines = []
        for job_id, (path, rec) in done.items():
            zf.write(path, path.name)
            lines.append(json.dumps(_public(rec, plan.get(job_id, {}), studio), sort_keys=True))
        zf.writestr("manifest.jsonl", "\n".join(lines) + "\n")
    return FileResponse(
        tmp,
        media_type="application/zip",
        filename=f"impasto-batch-{batch.id[:8]}.zip",
        background=BackgroundTask(tmp.unlink, missing_ok=True),
    )
