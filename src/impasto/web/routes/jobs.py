"""Jobs: queue, list, follow, cancel, re-run, resume, delete, and their images and settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import TypeAdapter, ValidationError

from ...settings import Settings
from ...version import __version__
from ..deps import JobDep, StudioDep
from ..models import ErrorBody, EstimateInfo, JobRequest, JobView, RerunRequest
from ..store import STATUSES, TERMINAL
from ..studio import Studio, resume_settings
from ..views import UNFINISHED, job_settings_view

__all__ = ["router"]

router = APIRouter(tags=["jobs"])
PNG = {200: {"content": {"image/png": {}}}}
Status = Literal[STATUSES]  # type: ignore[valid-type]
_SETTINGS = TypeAdapter(Settings)


def _styles(req: JobRequest) -> list[dict[str, Any]]:
    return [s.model_dump() for s in req.styles]


def _changed(base: dict[str, Any], req: RerunRequest | None) -> Settings:
    """``base`` with the request's changes, validated as :class:`Settings` (422 if bad)."""
    try:
        return _SETTINGS.validate_python({**base, **(req.settings if req else {})})
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", "settings", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


@router.post("/api/jobs", status_code=201, response_model=JobView)
def create_job(req: JobRequest, studio: StudioDep) -> dict[str, Any]:
    """Queue a job. Settings are validated as the engine's ``Settings`` (a 422 names the bad
    one); images are file ids or bundled examples, never paths."""
    return studio.view(studio.submit(req.content, _styles(req), req.settings))


@router.post("/api/estimate", response_model=EstimateInfo)
def estimate_job(req: JobRequest, studio: StudioDep) -> dict[str, Any]:
    """Check a job as ``POST /api/jobs`` would, without queueing it, and estimate its run time
    from this server's measured speed."""
    device, work, steps = studio.check(req.content, _styles(req), req.settings)
    return {**studio.speed.described(device, work), "iterations": steps}


@router.get("/api/jobs", response_model=list[JobView])
def list_jobs(
    studio: StudioDep,
    status: Annotated[
        list[Status] | None, Query(description="only jobs with these statuses")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Jobs, newest first."""
    jobs = studio.store.list_jobs(tuple(status) if status else None, limit=limit)
    return [studio.view(j) for j in jobs]


@router.get("/api/jobs/{job_id}", response_model=JobView)
def get_job(job: JobDep, studio: StudioDep) -> dict[str, Any]:
    """One job."""
    return studio.view(job)


@router.delete(
    "/api/jobs/{job_id}",
    status_code=204,
    responses={409: {"model": ErrorBody, "description": "the job is queued or running"}},
)
def delete_job(job: JobDep, studio: StudioDep) -> Response:
    """Delete a finished job with its result (uploaded inputs stay)."""
    if job.status not in TERMINAL:
        raise HTTPException(409, "cancel the job before deleting it")
    studio.delete(job)
    return Response(status_code=204)


@router.post("/api/jobs/{job_id}/cancel", response_model=JobView)
def cancel_job(job: JobDep, studio: StudioDep) -> dict[str, Any]:
    """Cancel a queued job now, or ask a running one to stop (it becomes ``cancelled`` after
    its current iteration; follow the events)."""
    return studio.view(studio.cancel(job))


@router.post("/api/jobs/{job_id}/rerun", status_code=201, response_model=JobView)
def rerun_job(job: JobDep, studio: StudioDep, req: RerunRequest | None = None) -> dict[str, Any]:
    """Queue a new job with the same inputs and settings (seed included), optionally changing
    some settings."""
    return studio.view(studio.rerun(job, _changed(job.settings, req)))


@router.post(
    "/api/jobs/{job_id}/resume",
    status_code=201,
    response_model=JobView,
    responses={409: {"model": ErrorBody, "description": "nothing to resume"}},
)
def resume_job(job: JobDep, studio: StudioDep, req: RerunRequest | None = None) -> dict[str, Any]:
    """Queue a new job that continues an interrupted, cancelled or failed one from its last
    partial image: by default the remaining full-size iterations, without the pyramid
    (``settings`` may change that, e.g. ``{"iterations": 50}``)."""
    if studio.partial_path(job) is None or job.status not in UNFINISHED:
        detail = f"job is {job.status} and has nothing to resume; re-run it instead"
        raise HTTPException(409, detail)
    child = studio.store.resumed_by(job.id)
    if child is not None:  # each click queued another copy of the same continuation
        raise HTTPException(409, f"job was resumed already, by job {child}; resume that one")
    settings = _changed(resume_settings(job.settings, job.progress), req)
    return studio.view(studio.resume(job, settings))


def _image(studio: Studio, file_id: str | None, missing: str) -> Path:
    rec = studio.store.get_file(file_id) if file_id else None
    path = studio.store.path_of(rec) if rec is not None else None
    if path is None or not path.is_file():
        raise HTTPException(404, missing)
    return path


@router.get("/api/jobs/{job_id}/preview.png", response_class=Response, responses=PNG)
def get_preview(job: JobDep, studio: StudioDep) -> Response:
    """The latest image of a job: the live preview while it runs, then the result (or the last
    partial image of an unfinished job). The ``v`` query parameter is ignored (it lets clients
    bust caches with the preview version)."""
    headers = {"Cache-Control": "no-store"}
    png = studio.queue.preview(job.id)
    if png is not None:
        return Response(png, media_type="image/png", headers=headers)
    path = _image(studio, job.result_file or job.partial_file, "no preview yet")
    return FileResponse(path, media_type="image/png", headers=headers)


def _png_file(path: Path, name: str, download: bool) -> FileResponse:
    return FileResponse(
        path,
        media_type="image/png",
        filename=name if download else None,
        content_disposition_type="attachment" if download else "inline",
    )


@router.get("/api/jobs/{job_id}/result.png", response_class=FileResponse, responses=PNG)
def get_result(job: JobDep, studio: StudioDep, download: bool = False) -> FileResponse:
    """The result PNG (its text metadata holds the settings and seed). With ``download=true``
    it is sent as an attachment."""
    path = _image(studio, job.result_file, "no result: the job is not done")
    return _png_file(path, f"impasto-{job.id[:8]}.png", download)


@router.get("/api/jobs/{job_id}/partial.png", response_class=FileResponse, responses=PNG)
def get_partial(job: JobDep, studio: StudioDep, download: bool = False) -> FileResponse:
    """The last image of an unfinished (cancelled, interrupted or failed) job."""
    path = studio.partial_path(job) if job.status in UNFINISHED else None
    if path is None:
        raise HTTPException(404, "no partial image: the job is not unfinished or has none")
    return _png_file(path, f"impasto-{job.id[:8]}-partial.png", download)


@router.get("/api/jobs/{job_id}/settings.json")
def get_settings(job: JobDep, studio: StudioDep, download: bool = False) -> JSONResponse:
    """The job's settings (as run: seed and the weights in use included), inputs and outcome.
    ``settings`` can be passed back to ``POST /api/jobs`` or to ``Settings.from_dict`` (a
    resumed job's ``init`` names the partial image it started from)."""
    view = studio.view(job)
    body = {
        "impasto": __version__,
        "job": job.id,
        "status": job.status,
        "settings": job_settings_view(job, studio.store.get_file),
        "inputs": {"content": view["content"], "styles": view["styles"]},
        "resumed_from_partial": job.init_file is not None,
        "elapsed_s": view["elapsed"],
    }
    headers = {}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="impasto-{job.id[:8]}.json"'
    return JSONResponse(body, headers=headers)
