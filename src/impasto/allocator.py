"""Keep freed memory in the process while a CPU run is in progress (Linux, glibc).

Every iteration frees and allocates the network's activations again, hundreds of MB each at
512 px and more. glibc serves blocks above its mmap threshold (32 MB at most) with a fresh
``mmap`` and unmaps them when they are freed, so each iteration page-faults all of them in
again and the kernel zeroes every page. Measured on a 2-core AMD Zen 5 (VGG19 to relu5_1, bf16,
forward and backward at 1536 px): 8.0 s per pass with 18 s of system time and 11 million
minor page faults over five passes; with large blocks taken from the heap and freed memory kept
there, 5.1 s, 1.6 s of system time. Per iteration of the optimisation loop: 0.88x the time at
512 px and 0.80x at 1024 px in bf16, 0.83x and 0.68x in fp32, the same at 256 px, for 0-16 %
more peak memory (``benchmarks/speed.py --allocators system,keep``; README, *Performance*).

So, while at least one run is in progress, large blocks come from the heap (``M_MMAP_MAX`` 0)
and the heap is never trimmed (``M_TRIM_THRESHOLD`` maximal). When the last run ends, glibc's
defaults come back and ``malloc_trim(0)`` returns the free memory to the system. Elsewhere
(macOS, Windows, musl) nothing changes.

That holds for a run in a process's main thread (the command line, a batch's worker processes).
glibc gives other threads heaps of their own, of 64 MB each at most: a larger block is mapped on
its own and unmapped when freed, and a heap left empty is unmapped too, whatever ``mallopt``
says (a 40 MB block freed in a worker thread was page-faulted in anew every time). A run in a
worker thread (the web studio's) took 1.30x (bf16) and 1.49x (fp32) the time per iteration of
the same run in the main thread at 1024 px, 1.01-1.03x at 512 px.
:func:`share_main_heap`, called by ``impasto serve`` at its start, makes threads allocate from the
main heap instead.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["keep_freed_memory", "keeps_freed_memory", "share_main_heap"]

#: glibc's mallopt parameters (malloc.h) and their defaults.
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: mallopt takes an int and glibc reads this one as a size_t: -1 is the largest, never trim.
NEVER = -1

_lock = threading.Lock()
_runs = 0


@functools.cache
def _glibc():
    """The process's C library when it is glibc (it has ``mallopt`` and ``malloc_trim``); looked
    up once (the web studio's capacity search plans many sizes)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has a mallopt stub)
        return libc if libc.mallopt and libc.malloc_trim else None
    except (OSError, AttributeError):
        return None


def keeps_freed_memory(device_type: str) -> bool:
    """Whether a run on this kind of device keeps freed memory (the CPU, with glibc). The
    memory plan needs no slack for it: a whole 2048 px bf16 image with a full L-BFGS history
    peaked at 10.6 GB against 12.4 GB modelled (13.8 GB before the Gram gradient kept no float32
    copy of the features, when the plan counted 1.2x the network's part for it)."""
    return device_type == "cpu" and _glibc() is not None


@contextmanager
def keep_freed_memory(device_type: str = "cpu") -> Iterator[bool]:
    """For a run on ``device_type``: within it (and any number of concurrent ones), freed memory
    stays in the process for the next iteration where :func:`keeps_freed_memory` says so;
    yields whether that is in effect."""
    global _runs
    libc = _glibc() if keeps_freed_memory(device_type) else None
    if libc is None:
        yield False
        return
    with _lock:
        if _runs == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, NEVER)
        _runs += 1
    try:
        yield True
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)


def share_main_heap() -> bool:
    """Make threads started from now on allocate from the main thread's heap (glibc: one arena,
    ``M_ARENA_MAX`` 1), so that a run in a worker thread keeps freed memory as one in the main
    thread does (module docstring). For a process of its own that runs the engine in worker
    threads (``impasto serve``), called at its start: glibc settles how many heaps there may be
    when a thread first needs one of its own. Returns whether it is in effect (glibc)."""
    libc = _glibc()
    return libc is not None and libc.mallopt(M_ARENA_MAX, 1) == 1
