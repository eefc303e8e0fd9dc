"""One server per data directory: an exclusive lock file that names its holder.

``impasto serve`` takes the lock before it touches anything in the data directory (the store, the
recovery of interrupted jobs); a second server on the same directory is refused with the pid and
port of the first. The lock is an advisory ``flock`` on ``<data_dir>/impasto.lock``: the kernel
drops it when the holding process ends, however it ends, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from ..errors import ImpastoError

try:  # POSIX; elsewhere the directory is not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["DataDirError", "DataDirLock", "LOCK_NAME", "prepare_data_dir"]

LOCK_NAME = "impasto.lock"


class DataDirError(ImpastoError):
    """The data directory is unusable (a file, not creatable) or held by another server."""


def prepare_data_dir(data_dir: str | os.PathLike[str]) -> Path:
    """The absolute data directory, created if missing.

    Raises:
        DataDirError: it is an existing file, or cannot be created.
    """
    path = Path(data_dir).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise DataDirError(f"data directory {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"cannot create data directory {path}: {exc.strerror}") from None
    return path


def _describe_holder(text: str) -> str:
    words = text.split()
    info = dict(zip(words[::2], words[1::2]))
    if "pid" not in info:
        return "another impasto server"
    port = info.get("port", "None")
    where = f", port {port}" if port != "None" else ""
    return f"the impasto server with pid {info['pid']}{where}"


class DataDirLock:
    """The exclusive lock of one data directory.

    Args:
        data_dir: the directory (created if missing when the lock is taken).
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.path = self.data_dir / LOCK_NAME
        self._fh: IO[str] | None = None

    def acquire(self, port: int | None = None) -> DataDirLock:
        """Take the lock (no-op when already held) and record this process's pid and ``port``.

        Raises:
            DataDirError: another process holds it (the message names it), or the directory is
                unusable.
        """
        if self._fh is not None:
            return self
        prepare_data_dir(self.data_dir)
        try:
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while held
        except OSError as exc:
            raise DataDirError(
                f"cannot use data directory {self.data_dir}: {exc.strerror} ({LOCK_NAME})"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                holder = _describe_holder(fh.read(200))
                fh.close()
                raise DataDirError(
                    f"data directory {self.data_dir} is in use by {holder}; stop it or choose "
                    "another --data-dir"
                ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} port {port}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        """Give the lock up (no-op when not held)."""
        fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()  # closing the file drops the flock
