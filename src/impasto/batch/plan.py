"""Turn what the user gave (folders, globs, a JOBS.jsonl file) into a list of :class:`Job`.

Bad input never stops the plan: a missing photo, an unreadable painting file or a malformed line
becomes a job that fails with its reason (recorded in the manifest); only a batch with nothing to
do at all (an empty folder, a missing JOBS file) is a user error for the whole command.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ImpastoError, SettingsError
from ..inputs import EXAMPLE_PREFIX, resolve_input
from ..settings import Settings
from .jobs import Job, StyleSpec, error_id, file_digest, job_id, output_stem, safe_stem, seed_of

__all__ = ["IMAGE_EXTENSIONS", "expand_inputs", "cross_jobs", "jsonl_jobs", "assign_names"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif")
OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def _folder_images(folder: str) -> list[str]:
    names = sorted(os.listdir(folder))
    return [
        os.path.join(folder, n)
        for n in names
        if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
        and not n.startswith(".")
        and os.path.isfile(os.path.join(folder, n))
    ]


def expand_inputs(specs: Sequence[str | os.PathLike[str]], what: str) -> list[str]:
    """Paths named by ``specs`` (one spec, or a list): folders (their image files, sorted),
    globs, files, examples.

    A plain path is kept even when it does not exist (its jobs then fail with the reason).

    Raises:
        SettingsError: a folder without images or a glob matching nothing.
    """
    if isinstance(specs, (str, os.PathLike)):  # a string was taken letter by letter
        specs = [specs]
    out: list[str] = []
    for spec in map(os.fspath, specs):
        if spec.startswith(EXAMPLE_PREFIX):
            out.append(resolve_input(spec))
        elif os.path.isdir(spec):
            found = _folder_images(spec)
            if not found:
                raise SettingsError(f"{what}: no image files in folder {spec}")
            out += found
        elif glob.has_magic(spec):
            found = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
            if not found:
                raise SettingsError(f"{what}: no files match {spec}")
            out += found
        else:
            out.append(spec)
    if not out:
        raise SettingsError(f"no {what} given")
    return list(dict.fromkeys(os.path.abspath(p) for p in out))


class _Digests:
    """File digests, computed once per path; unreadable files give a reason instead."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[str | None, str | None]] = {}

    def __call__(self, path: str) -> tuple[str | None, str | None]:
        if path not in self._known:
            try:
                self._known[path] = (file_digest(path), None)
            except FileNotFoundError:
                self._known[path] = (None, f"{path}: file not found")
            except OSError as e:
                self._known[path] = (None, f"{path}: cannot read ({e.strerror or e})")
        return self._known[path]


def make_job(
    content: str, styles: Sequence[StyleSpec], settings: Settings, source: str, digests: _Digests
) -> Job:
    """A job, or a failing job naming the first input that cannot be read."""
    given = settings.to_dict()
    keyed: list[tuple[str, float, float | None]] = []
    c_digest, reason = digests(content)
    for s in styles:
        if reason is not None:
            break
        s_digest, reason = digests(s.path)
        keyed.append((s_digest or "", s.weight, s.scale))
    if reason is not None:
        jid = error_id(content, [s.path for s in styles], given, reason)
        return Job(jid, content, tuple(styles), given, 0, error=reason, source=source)
    jid = job_id(c_digest or "", keyed, given)
    seed = settings.seed if settings.seed is not None else seed_of(jid)
    return Job(jid, content, tuple(styles), {**given, "seed": seed}, seed, source=source)


def cross_jobs(contents: Sequence[str], styles: Sequence[str], settings: Settings) -> list[Job]:
    """Every photo with every painting (photo-major order: a worker reuses each painting)."""
    if not isinstance(settings, Settings):  # a dict failed later, on an attribute
        raise SettingsError(f"settings must be an impasto.Settings, not {type(settings).__name__}")
    digests = _Digests()
    return [
        make_job(c, [StyleSpec(s)], settings, "cross", digests) for c in contents for s in styles
    ]


def _style_of(item: Any, base_dir: str) -> StyleSpec:
    if isinstance(item, str):
        return StyleSpec(_path(item, base_dir))
    if isinstance(item, dict) and isinstance(item.get("image", item.get("path")), str):
        unknown = sorted(set(item) - {"image", "path", "weight", "scale"})
        if unknown:
            raise SettingsError(f"unknown style key(s): {', '.join(unknown)}")
        weight = float(item.get("weight", 1.0))
        scale = item.get("scale")
        if not weight > 0 or (scale is not None and not float(scale) > 0):
            raise SettingsError("style weight and scale must be positive numbers")
        path = _path(item.get("image", item.get("path")), base_dir)
        return StyleSpec(path, weight, None if scale is None else float(scale))
    raise SettingsError('a style is a path or {"image": PATH, "weight": W, "scale": S}')


def _path(text: str, base_dir: str) -> str:
    text = resolve_input(text)
    return os.path.abspath(text if os.path.isabs(text) else os.path.join(base_dir, text))


def _parse_line(text: str, base_dir: str, base: Settings) -> tuple[str, list, Settings, str]:
    """``(content, styles, settings, output name)`` of one JOBS line; SettingsError if bad."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SettingsError(f"not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, dict):
        raise SettingsError("a job line must be a JSON object")
    unknown = sorted(set(data) - {"content", "styles", "style", "settings", "output"})
    if unknown:
        raise SettingsError(f"unknown key(s): {', '.join(unknown)}")
    if not isinstance(data.get("content"), str):
        raise SettingsError('missing "content" (a path)')
    raw = data.get("styles", data.get("style"))
    raw = [raw] if isinstance(raw, (str, dict)) else raw
    if not isinstance(raw, list) or not raw:
        raise SettingsError('missing "styles" (a path or a list of them)')
    styles = [_style_of(item, base_dir) for item in raw]
    overrides = data.get("settings", {})
    if not isinstance(overrides, dict):
        raise SettingsError('"settings" must be an object')
    settings = Settings.from_dict({**base.to_dict(), **overrides})
    output = data.get("output", "")
    if not isinstance(output, str) or os.path.basename(output) != output or output.startswith("."):
        raise SettingsError('"output" must be a plain file name')
    if output and os.path.splitext(output)[1].lower() not in OUTPUT_EXTENSIONS:
        raise SettingsError(f'"output" must end in one of {", ".join(OUTPUT_EXTENSIONS)}')
    return _path(data["content"], base_dir), styles, settings, output


def jsonl_jobs(path: str, settings: Settings) -> list[Job]:
    """The jobs of a JOBS.jsonl file (blank lines and ``#`` comments skipped).

    Raises:
        SettingsError: the file itself cannot be read.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError as e:
        raise SettingsError(f"{path}: cannot read ({e.strerror or e})") from None
    base_dir = os.path.dirname(os.path.abspath(path))
    digests = _Digests()
    jobs = []
    for n, text in enumerate(lines, start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        source = f"{os.path.basename(path)}:{n}"
        try:
            content, styles, job_settings, output = _parse_line(text, base_dir, settings)
        except (ImpastoError, ValueError, TypeError) as e:
            jobs.append(Job(error_id(text), "", (), {}, 0, error=str(e), source=source))
            continue
        job = make_job(content, styles, job_settings, source, digests)
        job.name = output
        jobs.append(job)
    return jobs


def assign_names(
    jobs: Sequence[Job], extension: str = ".png", taken: Mapping[str, str] | None = None
) -> tuple[list[Job], int]:
    """Give every runnable job its output file name; drop repeated jobs (same id).

    Names are ``<content>__<style>.<ext>`` unless a JOBS line gave one. Names shared by several
    jobs (compared case-insensitively), or ``taken`` (lower-case name -> id) by another job's
    finished output in the folder, get ``-<first 8 characters of the id>`` appended: the result
    depends only on the set of jobs and the folder, never on their order, and a re-run with
    other settings keeps the earlier results beside the new ones.

    Returns:
        ``(jobs, number of repeated jobs dropped)``.
    """
    unique: dict[str, Job] = {}
    for job in jobs:
        unique.setdefault(job.id, job)
    out = list(unique.values())
    stems: dict[str, tuple[str, str]] = {}
    for job in out:
        if job.error is None:
            given = os.path.splitext(job.name)
            stems[job.id] = (
                (safe_stem(job.name), given[1])
                if job.name
                else (
                    output_stem(job.content, job.styles),
                    extension,
                )
            )
    counts: dict[str, int] = {}
    for stem, ext in stems.values():
        counts[(stem + ext).lower()] = counts.get((stem + ext).lower(), 0) + 1
    taken = taken or {}
    for job in out:
        if job.id in stems:
            stem, ext = stems[job.id]
            key = (stem + ext).lower()
            shared = counts[key] > 1 or taken.get(key, job.id) != job.id
            job.name = f"{stem}-{job.id[:8]}{ext}" if shared else stem + ext
    return out, len(jobs) - len(out)
