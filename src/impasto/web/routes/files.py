"""Uploading images and reading them back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse

from ..deps import ConfigDep, StudioDep
from ..models import ErrorBody, FileInfo
from ..store import FileRecord
from ..studio import Studio
from ..uploads import ingest_upload
from ..views import file_view

__all__ = ["router"]

router = APIRouter(tags=["files"])


async def one_file_part(request: Request) -> None:
    """Refuse a form with several ``file`` parts (FastAPI would keep the last and drop the
    others without a word): an upload is one image. The form is parsed once; Starlette keeps
    it for the endpoint."""
    parts = (await request.form()).getlist("file")
    if len(parts) > 1:
        raise HTTPException(422, f"one image per upload; the form has {len(parts)} 'file' parts")


@router.post(
    "/api/files",
    status_code=201,
    response_model=FileInfo,
    responses={
        413: {"model": ErrorBody, "description": "too many bytes or pixels"},
        415: {"model": ErrorBody, "description": "not a supported image"},
        422: {"model": ErrorBody, "description": "no file part, or more than one"},
    },
    dependencies=[Depends(one_file_part)],
)
def upload_file(
    file: Annotated[UploadFile, File(description="an image file")],
    studio: StudioDep,
    config: ConfigDep,
) -> dict[str, Any]:
    """Upload an image. It is decoded and checked (format, pixel count, integrity) and stored
    under a generated id; the original file name is kept only as a display name."""
    tmp = studio.store.tmp_path()
    size = 0
    try:
        with open(tmp, "wb") as out:
            while chunk := file.file.read(1 << 20):
                size += len(chunk)
                if size > config.max_upload_bytes:
                    limit = config.max_upload_bytes
                    raise HTTPException(413, f"file is over the {limit:,}-byte upload limit")
                out.write(chunk)
        if size == 0:
            raise HTTPException(415, "empty file")
        rec = ingest_upload(studio.store, tmp, file.filename, config.max_pixels)
    finally:
        tmp.unlink(missing_ok=True)
    return file_view(rec)


def _stored(studio: Studio, file_id: str, kind: str) -> tuple[FileRecord, Path]:
    rec = studio.store.get_file(file_id)
    if rec is None or rec.kind != kind:
        raise HTTPException(404, "no such file")
    path = studio.store.path_of(rec)
    if not path.is_file():
        raise HTTPException(404, "file missing from the data directory")
    return rec, path


@router.get("/api/files/{file_id}", response_class=FileResponse)
def get_file(file_id: str, studio: StudioDep) -> FileResponse:
    """An uploaded image, as uploaded."""
    rec, path = _stored(studio, file_id, "upload")
    return FileResponse(path, media_type=rec.media_type)


@router.get(
    "/api/files/{file_id}/thumb.png",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}},
)
def get_file_thumb(file_id: str, studio: StudioDep) -> FileResponse:
    """A small PNG of an uploaded image."""
    rec, _ = _stored(studio, file_id, "upload")
    if not rec.thumb:
        raise HTTPException(404, "no thumbnail")
    _, thumb = _stored(studio, rec.thumb, "thumb")
    return FileResponse(thumb, media_type="image/png")
