"""The local web studio: ``impasto serve`` (FastAPI app, job queue, SQLite + file store).

* :mod:`impasto.web.store` keeps jobs (SQLite) and images (files named by generated ids);
* :mod:`impasto.web.jobs` runs jobs one at a time per device in a worker thread and publishes
  progress events;
* :mod:`impasto.web.app` is the HTTP API (OpenAPI at ``/openapi.json``) and the single page.

Needs the ``web`` extra (``pip install 'impasto[web]'``); nothing here is imported by the engine.
"""

from __future__ import annotations

__all__ = ["WebConfig", "create_app"]


def __getattr__(name: str):
    # Lazy: importing the package must not import FastAPI (the CLI imports it only for `serve`).
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
