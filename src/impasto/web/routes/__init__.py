"""The HTTP API's routers: page and configuration (:mod:`.meta`), images (:mod:`.files`), jobs
(:mod:`.jobs`) and Server-Sent Events (:mod:`.events`)."""

from . import events, files, jobs, meta

__all__ = ["events", "files", "jobs", "meta", "ROUTERS"]

ROUTERS = (meta.router, files.router, jobs.router, events.router)
