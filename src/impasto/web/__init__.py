"""The local web studio: ``impasto serve`` (FastAPI app, job queue, SQLite + file store).

* :mod:`.app` builds the app (:func:`create_app`): middleware and the routers of :mod:`.routes`,
  which reach the studio through the dependencies of :mod:`.deps`;
* :mod:`.studio` wires the parts and holds the use cases (submit, re-run, resume, cancel, delete);
* :mod:`.queue` runs jobs one at a time per device on worker threads; :mod:`.runner` runs one job
  with the engine; :mod:`.events` is the pub/sub behind the SSE streams;
* :mod:`.batches` (a batch's folder: request, status, outputs and manifest) and
  :mod:`.batch_runner` (a batch as one queue entry, run by :func:`impasto.batch.run_batch`);
* :mod:`.views` (pure JSON views), :mod:`.models` (request/response types, the OpenAPI document),
  :mod:`.encode` (PNG previews, thumbnails), :mod:`.uploads`, :mod:`.limits` (server rules and
  the work of a job), :mod:`.capacity` (the memory budget on each device, the largest size it
  allows, the memory check of a job), :mod:`.speed` (time estimates), :mod:`.store` (SQLite +
  files), :mod:`.lock` (one server per data directory), :mod:`.guard` (origin, body size,
  headers), :mod:`.config` (:class:`WebConfig`: the server's limits and data directory).

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
