"""Files written whole or not at all: the one way impasto writes a file that may be read while
it is written, or interrupted while being written (outputs, checkpoints, weights, records).

The new content goes to a temporary file beside the target, with the permissions of any new file
(``0o666`` minus the umask), is fsynced, then renamed over the target, and the rename is made
durable. On any exception (Ctrl-C included) the temporary file is removed and the target is left
as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["atomic_file", "umask", "unwritable"]


def unwritable(path: str | os.PathLike[str]) -> str | None:
    """Why :func:`atomic_file` could not write ``path`` (checked before any work), or None."""
    target = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        return "is a directory"
    if not os.path.isdir(parent):
        return f"directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    return None


def umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    """Make a rename durable (POSIX); silently skipped where directories cannot be opened."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """A file object (``mode`` ``"wb"`` or ``"w"``, UTF-8) whose content replaces ``path`` when
    the ``with`` block ends without an exception.

    Raises:
        OSError: the folder cannot take the temporary file, or writing it fails.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    prefix = f".{os.path.basename(target)}."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # POSIX; mkstemp creates files with mode 0o600
            os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
