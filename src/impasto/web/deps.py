"""FastAPI dependencies: how a route reaches the studio, its configuration, a job or a batch by
id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from .batches import BatchRecord
from .config import WebConfig
from .store import JobRecord
from .studio import Studio

__all__ = [
    "get_studio",
    "get_config",
    "job_or_404",
    "batch_or_404",
    "StudioDep",
    "ConfigDep",
    "JobDep",
    "BatchDep",
]


def get_studio(request: Request) -> Studio:
    """The app's :class:`Studio` (built by :func:`impasto.web.app.create_app`)."""
    return request.app.state.studio


StudioDep = Annotated[Studio, Depends(get_studio)]


def get_config(studio: StudioDep) -> WebConfig:
    """The server's configuration."""
    return studio.config


ConfigDep = Annotated[WebConfig, Depends(get_config)]


def job_or_404(
    job_id: Annotated[str, Path(description="job id (32 hex digits)")], studio: StudioDep
) -> JobRecord:
    """The job named in the path, or a 404."""
    job = studio.store.get_job(job_id)
    if job is None:
        raise HTTPException(404, "no such job")
    return job


JobDep = Annotated[JobRecord, Depends(job_or_404)]


def batch_or_404(
    batch_id: Annotated[str, Path(description="batch id (32 hex digits)")], studio: StudioDep
) -> BatchRecord:
    """The batch named in the path, or a 404."""
    batch = studio.batches.get(batch_id)
    if batch is None:
        raise HTTPException(404, "no such batch")
    return batch


BatchDep = Annotated[BatchRecord, Depends(batch_or_404)]
