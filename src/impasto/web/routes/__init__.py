"""The HTTP API's routers: page and configuration (:mod:`.meta`), images (:mod:`.files`), jobs
(:mod:`.jobs`), batches (:mod:`.batches`) and Server-Sent Events (:mod:`.events`)."""

from . import batches, events, files, jobs, meta

__all__ = ["batches", "events", "files", "jobs", "meta", "ROUTERS"]

ROUTERS = (meta.router, files.router, jobs.router, batches.router, events.router)
