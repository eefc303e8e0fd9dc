"""``impasto train pack``: an image folder -> an LMDB of encoded images and labels (the format the
method's ImageNet training read). Images are verified as they are packed; unreadable ones are
left out and reported."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .data import META_KEY, DataError, FolderSource, encode_record

__all__ = ["PackResult", "pack_folder", "write_lmdb"]


@dataclass
class PackResult:
    """``count`` images packed in ``classes``; ``skipped`` unreadable ones (first names kept)."""

    count: int
    classes: list[str]
    skipped: int = 0
    skipped_names: list[str] = field(default_factory=list)


def write_lmdb(
    out: str | os.PathLike,
    classes: list[str],
    items: Iterable[tuple[int, str, bytes]],
    map_size: int,
) -> int:
    """Write ``(label, name, encoded image)`` items to a new LMDB at ``out`` (a folder), atomically
    (built beside it, then renamed; an existing LMDB there is replaced).

    Returns:
        The number of images written.
    """
    import lmdb

    dest = Path(out)
    if dest.exists() and not (dest / "data.mdb").is_file():
        raise DataError(f"{dest}: exists and is not an LMDB; refusing to overwrite")
    if not dest.parent.is_dir():  # was an internal error from mkdtemp
        raise DataError(f"{dest}: folder {dest.parent} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        env = lmdb.open(str(tmp), map_size=map_size, subdir=True)
        labels = []
        with env.begin(write=True) as txn:
            for i, (label, name, data) in enumerate(items):
                txn.put(b"%08d" % i, encode_record(label, name, data))
                labels.append(label)
            if not labels:  # "packed 0 images", exit 0, and a run then had nothing to train on
                raise DataError(f"{dest}: no readable image to pack")
            txn.put(META_KEY, json.dumps({"classes": classes, "labels": labels}).encode())
        env.close()
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(labels)


def _verified(src: FolderSource, result: PackResult, progress: Callable[[int, int], None] | None):
    import io

    from PIL import Image

    for i in range(len(src)):
        data = src.read(i)
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
            ok = True
        except Exception:  # noqa: BLE001 - any broken image is left out and reported
            ok = False
            result.skipped += 1
            if len(result.skipped_names) < 5:
                result.skipped_names.append(src.name(i))
        if progress is not None:  # every image, packed or skipped: the count reaches the total
            progress(i + 1, len(src))
        if ok:
            result.count += 1
            yield src.labels[i], src.name(i), data


def pack_folder(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    progress: Callable[[int, int], None] | None = None,
) -> PackResult:
    """Pack ``folder`` (one sub-folder per class) into the LMDB ``out``.

    Args:
        progress: called with ``(images done, total)``.
    """
    src = FolderSource(folder)
    size = sum(p.stat().st_size for p in src.paths)
    result = PackResult(0, src.classes)
    write_lmdb(out, src.classes, _verified(src, result, progress), map_size=2 * size + (64 << 20))
    return result
