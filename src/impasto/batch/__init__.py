"""``impasto batch``: many photos x many paintings, resumable, on this machine or a Ray cluster.

>>> from impasto.batch import BatchOptions, cross_jobs, expand_inputs, run_batch  # doctest: +SKIP
>>> jobs = cross_jobs(expand_inputs(["photos/"], "contents"),
...                   expand_inputs(["paintings/*.jpg"], "styles"), Settings(size=256))
>>> summary = run_batch(jobs, "out/", BatchOptions(), callback=print)      # doctest: +SKIP

Modules: :mod:`.jobs` (a job and its stable id), :mod:`.plan` (folders, globs and JOBS.jsonl to
jobs), :mod:`.manifest` (the append-only record), :mod:`.worker` (one loaded network),
:mod:`.local` and :mod:`.ray_backend` (where workers run), :mod:`.runner` (skip, run, record).
"""

from .jobs import Job, StyleSpec
from .plan import assign_names, cross_jobs, expand_inputs, jsonl_jobs
from .runner import BACKENDS, BatchOptions, BatchProgress, BatchSummary, run_batch

__all__ = [
    "BACKENDS",
    "BatchOptions",
    "BatchProgress",
    "BatchSummary",
    "Job",
    "StyleSpec",
    "assign_names",
    "cross_jobs",
    "expand_inputs",
    "jsonl_jobs",
    "run_batch",
]
