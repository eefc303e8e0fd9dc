"""``OUTDIR/manifest.jsonl``: one JSON record per finished job attempt, appended atomically.

Each record is one ``write()`` of a complete line to a file opened with ``O_APPEND``, then
``fsync``: a crash leaves at most a torn last line, which readers skip and :func:`repair` ends
with a newline before the next append (so it cannot swallow the next record). Only the batch's
driver writes the manifest; a lock file keeps two batches from sharing one folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from typing import Any

from ..errors import SettingsError
from .jobs import file_digest

__all__ = [
    "MANIFEST",
    "append",
    "read",
    "repair",
    "done_records",
    "is_done",
    "locked",
    "clean_temps",
]

MANIFEST = "manifest.jsonl"
LOCK = ".impasto-batch.lock"
# Temporary files of impasto's atomic writes: ".<name>.<12 hex>.tmp".
_TEMP = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


def append(path: str, record: dict[str, Any]) -> None:
    """Append ``record`` as one line: a single ``write`` with ``O_APPEND``, then ``fsync``."""
    data = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        if written != len(data):  # pragma: no cover - regular files write all or fail
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


def repair(path: str) -> bool:
    """End a torn last line with a newline; True when there was one to end."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return False
    except FileNotFoundError:
        return False
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def read(path: str) -> list[dict[str, Any]]:
    """Every complete record, in order; torn or foreign lines are skipped."""
    try:
        with open(path, "rb") as fh:
            lines = fh.read().split(b"\n")
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("id"), str):
            out.append(rec)
    return out


def done_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last ``done`` record of each job id."""
    return {rec["id"]: rec for rec in records if rec.get("status") == "done"}


def is_done(record: dict[str, Any] | None, outdir: str) -> bool:
    """True when ``record`` is a done record whose output file exists with its recorded hash."""
    if not record or record.get("status") != "done" or not record.get("output"):
        return False
    path = os.path.join(outdir, os.path.basename(record["output"]))
    try:
        return file_digest(path) == record.get("sha256")
    except OSError:
        return False


@contextlib.contextmanager
def locked(outdir: str) -> Iterator[None]:
    """Hold an exclusive lock on ``outdir`` for one batch (released even by ``kill -9``).

    Raises:
        SettingsError: another batch holds it, or the lock file cannot be written there.
    """
    import fcntl

    try:
        fd = os.open(os.path.join(outdir, LOCK), os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as e:
        raise SettingsError(f"{outdir}: cannot write in the output folder ({e.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SettingsError(f"{outdir}: another impasto batch is writing there") from None
        yield
    finally:
        os.close(fd)


def clean_temps(outdir: str) -> int:
    """Remove temporary files left by interrupted atomic writes; returns how many."""
    n = 0
    for name in os.listdir(outdir):
        if _TEMP.match(name):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(outdir, name))
                n += 1
    return n
