"""``impasto serve``: the local web studio (FastAPI app run by uvicorn).

Binds to 127.0.0.1 unless told otherwise; binding elsewhere is allowed but warned about, since
the studio has no authentication. Jobs, uploads and results persist under ``--data-dir``
(default: the platform's user data directory, e.g. ``~/.local/share/impasto`` on Linux).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser", "default_data_dir"]


def default_data_dir() -> Path:
    """The platform's user data directory for impasto."""
    import platformdirs

    return Path(platformdirs.user_data_dir("impasto", appauthor=False))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="impasto serve",
        description="Run the impasto web studio: upload a photo and paintings, watch the image "
        "evolve live, download results. Open http://HOST:PORT/ in a browser; the HTTP API is "
        "described at /api and /openapi.json.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine "
        "only; anything else exposes the studio, which has no login, to the network)",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where jobs, uploads and results are kept (default: the user data directory, "
        "e.g. ~/.local/share/impasto)",
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=25.0, help="largest upload in MB (default: 25)"
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=50_000_000,
        help="largest upload in pixels, width x height (default: 50000000)",
    )
    p.add_argument(
        "--max-size", type=int, default=4096, help="largest output long side in px (default: 4096)"
    )
    p.add_argument(
        "--preview-every",
        type=int,
        default=5,
        metavar="N",
        help="send a preview image every N iterations (default: 5)",
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted; returns the exit code."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        import uvicorn

        from ..web.app import LOOPBACK_HOSTS, WebConfig, create_app, is_loopback
    except ImportError as exc:
        print(
            f"impasto serve: error: the web extra is not installed ({exc.name} missing); "
            "pip install 'impasto[web]'",
            file=sys.stderr,
        )
        return 2
    if not 0 < args.port < 65536:
        print(f"impasto serve: error: bad port {args.port}", file=sys.stderr)
        return 2
    if args.preview_every < 1 or args.max_upload_mb <= 0 or args.max_pixels < 1:
        print("impasto serve: error: limits must be positive", file=sys.stderr)
        return 2
    loopback = is_loopback(args.host)
    if not loopback:
        print(
            f"impasto serve: warning: binding to {args.host}, not loopback: anyone who can reach "
            "this port can upload images and run jobs (there is no login)",
            file=sys.stderr,
        )
    extra = tuple(args.allowed_host or ())
    allowed = (*LOOPBACK_HOSTS, args.host, *extra) if loopback or extra else None
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    config = WebConfig(
        data_dir=data_dir,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        max_size=args.max_size,
        preview_every=args.preview_every,
        allowed_hosts=allowed,
    )
    app = create_app(config)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"impasto studio: http://{shown}:{args.port}/  (data: {config.data_dir})",
        file=sys.stderr,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=3,
    )
    return 0
