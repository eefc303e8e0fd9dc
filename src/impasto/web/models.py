"""The HTTP API's request and response models (they are the OpenAPI document too).

A job's ``settings`` is the engine's own :class:`~impasto.settings.Settings` type: pydantic
validates it while parsing the request (types, ranges, choices, combinations such as
alpha = beta = 0), a bad value is a 422 with pydantic's detail, and ``/openapi.json`` documents
every setting with its default, range and description.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ..settings import Settings
from .store import STATUSES

__all__ = [
    "MAX_STYLES",
    "ErrorBody",
    "FileInfo",
    "ExampleInfo",
    "StyleRef",
    "JobRequest",
    "RerunRequest",
    "InputInfo",
    "TileInfo",
    "NoteInfo",
    "JobView",
    "MemoryInfo",
    "ConfigInfo",
    "EstimateInfo",
    "BatchEstimateInfo",
    "MAX_BATCH_CONTENTS",
    "MAX_BATCH_STYLES",
    "BatchRequest",
    "BatchJobView",
    "BatchView",
]

MAX_STYLES = 8
MAX_BATCH_CONTENTS = 64
MAX_BATCH_STYLES = 16
ImageRef = Annotated[str, Field(max_length=80, description="a file id or example:NAME")]


class ErrorBody(BaseModel):
    detail: Any = Field(description="a one-line message, or pydantic's list of problems")


class FileInfo(BaseModel):
    id: str = Field(description="file id: use it as an image reference in a job")
    name: str = Field(description="display name (the sanitised original file name)")
    width: int
    height: int
    bytes: int
    media_type: str
    url: str
    thumb_url: str


class ExampleInfo(BaseModel):
    ref: str = Field(description="image reference for a job, e.g. example:chelsea")
    name: str
    kind: str = Field(description="content or style")
    width: int
    height: int
    url: str
    thumb_url: str


class _Request(BaseModel):
    """A request body: a key it does not know is a 422 naming it (a misspelt ``contnet`` or
    ``wieght`` ran without the photo or with the default weight, without a word)."""

    model_config = ConfigDict(extra="forbid")


class StyleRef(_Request):
    image: ImageRef
    weight: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="blend weight (normalised over the styles)"
    )


class JobRequest(_Request):
    content: ImageRef | None = Field(None, description="the photo (null: a texture)")
    styles: list[StyleRef] = Field(default_factory=list, max_length=MAX_STYLES)
    settings: Settings = Field(
        default_factory=Settings,
        description="engine settings; missing ones take the defaults. On the web, init is one "
        "of noise, content, style and weights stays unset; size and total work are limited "
        "(GET /api/config)",
    )


class RerunRequest(_Request):
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description='settings to change (validated as Settings); {"seed": null} draws a new seed',
    )


class InputInfo(BaseModel):
    ref: str
    name: str | None = None
    thumb_url: str | None = None
    weight: float | None = None


class TileInfo(BaseModel):
    step: int = Field(description="the iteration being computed (over all scales)")
    phase: int = Field(description="1: the pass without gradients, 2: the pass with gradients")
    tile: int = Field(description="the tile just done (1-based)")
    tiles: int = Field(description="tiles of the scale")


class NoteInfo(BaseModel):
    kind: str = Field(
        description="memory (the budget, each scale's plan), upscale (a painting enlarged past "
        "its resolution) or init (a start image cropped to the output's aspect ratio, or the "
        "painting an init style run starts from)"
    )
    text: str
    warning: bool = Field(description="whether it changes what was asked or hurts the result")


class JobView(BaseModel):
    id: str
    status: str = Field(description=" | ".join(STATUSES))
    position: int | None = Field(description="place in the queue (1 = next) while queued")
    device: str
    origin: str = Field(description="new, rerun or resume")
    parent: str | None
    created: float
    started: float | None
    finished: float | None
    error: str | None
    step: int
    total_steps: int | None
    scale: int | None
    n_scales: int | None
    loss: float | None
    losses: dict[str, float | None]
    elapsed: float | None = Field(description="seconds")
    eta: float | None = Field(description="seconds left (estimate) while running, else null")
    tile: TileInfo | None = Field(
        None, description="tile progress within the iteration while a scale runs in tiles"
    )
    notes: list[NoteInfo] = Field(
        default_factory=list,
        description="the engine's notes: memory budget, each scale's plan (whole or tiles) and "
        "why, paintings enlarged past their resolution, a start image cropped (see NoteInfo)",
    )
    estimate: float | None = Field(
        None,
        description="seconds the whole job should take (while queued), from this "
        "server's measured speed",
    )
    preview_version: int = Field(description="increases with every new preview image")
    preview_url: str | None
    result_url: str | None
    partial_url: str | None = Field(
        None, description="the last image of an unfinished (cancelled, interrupted, failed) job"
    )
    settings_url: str
    can_resume: bool = Field(
        description="an unfinished job with a partial image that no job resumes yet (a job is "
        "resumed once; a resume that stops is resumed in turn)"
    )
    settings: dict[str, Any] = Field(
        description="the settings as run (a resumed job's init names its start image)"
    )
    content: InputInfo | None
    styles: list[InputInfo]
    width: int | None = None
    height: int | None = None


class MemoryInfo(BaseModel):
    budget: int = Field(description="bytes a job may use (tiles and optimiser state fit it)")
    source: str = Field(description="where the budget comes from (max_memory or the machine)")
    device: str = Field(description="the device type the budget is for")
    max_size: int = Field(
        description="the largest long side (px) a default job runs within the budget, tiled "
        "when the whole image does not fit"
    )
    max_size_cap: int | None = Field(description="the server's explicit --max-size, if any")


class ConfigInfo(BaseModel):
    version: str
    limits: dict[str, int | float] = Field(
        description="the server's limits (sizes, bytes and counts are integers)"
    )
    memory: MemoryInfo
    preview_every: int
    defaults: dict[str, Any]
    style_weight_defaults: dict[str, float] = Field(
        description="the default style weight (beta) of each loss scale"
    )
    tv_weight_defaults: dict[str, float] = Field(
        description="the default total-variation weight of each loss scale"
    )
    choices: dict[str, list[str]]
    examples: list[ExampleInfo]


class _Estimate(BaseModel):
    """What every estimate carries (:meth:`impasto.web.speed.SpeedMeter.described`)."""

    device: str
    measured: bool = Field(description="whether the speed was measured on this server")


class EstimateInfo(_Estimate):
    seconds: float = Field(description="estimated run time of the job")
    work: float = Field(description="megapixel-iterations over all pyramid scales")
    iterations: int = Field(description="iterations over all pyramid scales")


class BatchEstimateInfo(_Estimate):
    seconds: float = Field(description="estimated run time of the whole batch")
    work: float = Field(description="megapixel-iterations over all its jobs and their scales")
    jobs: int = Field(description="jobs: every photo with every painting (repeats ignored)")


class BatchRequest(_Request):
    contents: list[ImageRef] = Field(
        min_length=1, max_length=MAX_BATCH_CONTENTS, description="the photos (repeats ignored)"
    )
    styles: list[ImageRef] = Field(
        min_length=1,
        max_length=MAX_BATCH_STYLES,
        description="the paintings (repeats ignored): every photo is painted in each of them",
    )
    settings: Settings = Field(
        default_factory=Settings,
        description="engine settings for every job, as for POST /api/jobs; a missing seed "
        "gives each job a seed derived from its inputs and settings. The work of all the jobs "
        "together is limited by max_work (GET /api/config)",
    )


class BatchJobView(BaseModel):
    id: str = Field(description="the job's stable id (hash of its inputs, settings, version)")
    name: str | None = Field(description="its output file name")
    status: str = Field(description="pending | running | done | failed")
    error: str | None
    content: InputInfo | None
    style: InputInfo | None
    seed: int | None
    elapsed: float | None = Field(description="seconds the job took")
    result_url: str | None


class BatchView(BaseModel):
    id: str
    kind: str = Field(description="always batch (job views have no kind)")
    status: str = Field(description=" | ".join(STATUSES))
    position: int | None = Field(description="place in the queue (1 = next) while queued")
    device: str
    created: float
    started: float | None
    finished: float | None
    error: str | None
    total: int = Field(description="jobs in the batch")
    done: int
    failed: int
    running: int
    pending: int
    elapsed: float | None = Field(description="seconds spent running, over all runs")
    eta: float | None = Field(description="seconds left (estimate) while running, else null")
    runs: int = Field(description="times the batch was started (more after a resume)")
    settings: dict[str, Any]
    contents: list[InputInfo | None]
    styles: list[InputInfo | None]
    jobs: list[BatchJobView]
    zip_url: str | None = Field(description="the results so far as a zip (with the manifest)")
    events_url: str
