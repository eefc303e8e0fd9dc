"""One web studio job, end to end, with the studio's threads sharing the main heap (what
``impasto serve`` does) and with glibc's per-thread heaps (as before): prints a table and writes
benchmarks/results/studio_job.json.

A real ``impasto serve`` is started on a free port with a fresh data directory for every run;
the job (chelsea x The Starry Night from the photo, one scale, seed 0) is posted to
``/api/jobs`` and polled until it is done; the row is the job's own ``elapsed`` (loading,
targets and the iterations). The two modes alternate, ``--rounds`` times.

    python benchmarks/studio_job.py --size 1024 --iterations 10 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from benchmarks import report  # noqa: E402

MODES = {
    "shared": "",  # as impasto serve starts
    "own": "import impasto.cli.serve as s; s.share_main_heap = lambda: False; ",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def refusal(status: int, body: bytes) -> str:
    """What the server said in refusing a request: its ``detail`` (a message, or pydantic's list
    of what was wrong where), else the body's first line."""
    try:
        detail = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {report.last_line(body) or 'no reason given'}"
    if isinstance(detail, list):
        parts = []
        for d in detail:
            if not isinstance(d, dict):
                parts.append(str(d))
                continue
            where = ".".join(str(x) for x in d.get("loc", ()) if x != "body")
            parts.append(f"{where}: {d.get('msg')}" if where else str(d.get("msg")))
        detail = "; ".join(parts)
    return f"HTTP {status}: {detail}"


def _post(url: str, body: dict) -> dict:
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # the server's reason, not urllib's bare status
        why = refusal(e.code, e.read())
        raise report.BenchError(f"the server refused the job: {why}") from None


def job_seconds(mode: str, settings: dict) -> float:
    """The ``elapsed`` of one job on a fresh server (and data directory) in ``mode``."""
    with tempfile.TemporaryDirectory(prefix="impasto_studio_") as data:
        port = _free_port()
        argv = ["serve", "--data-dir", data, "--port", str(port), "--log-level", "warning"]
        code = MODES[mode] + f"from impasto.cli import main; main({argv!r})"
        server = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
        try:
            return _one_job(f"http://127.0.0.1:{port}", server, settings)
        finally:
            server.terminate()
            server.wait(60)


def _one_job(base: str, server: subprocess.Popen, settings: dict) -> float:
    deadline = time.monotonic() + 120
    while True:
        try:
            _get(base + "/api/config")
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.2)
    body = {"content": "example:chelsea", "styles": [{"image": "example:starry_night"}]}
    job = _post(base + "/api/jobs", {**body, "settings": settings})
    while job["status"] in ("queued", "running"):
        time.sleep(0.5)
        job = _get(f"{base}/api/jobs/{job['id']}")
    if job["status"] != "done":
        raise RuntimeError(f"the job ended {job['status']}: {job.get('error')}")
    return float(job["elapsed"])


def main(argv: list[str] | None = None) -> int:
    from impasto.choices import PRECISIONS

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=report.size_type, default=1024)
    p.add_argument("--iterations", type=report.at_least(1), default=10)
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--rounds", type=report.at_least(1), default=2)
    p.add_argument("--json", type=Path, default=ROOT / "results" / "studio_job.json")
    args = p.parse_args(argv)
    from impasto.devices import cpu_name

    settings = {"size": args.size, "iterations": args.iterations, "pyramid_start": 0, "seed": 0,
                "init": "content", "precision": args.precision}  # fmt: skip
    rows = []
    for i in range(args.rounds):
        for mode in ("own", "shared"):
            rows.append({"round": i + 1, "mode": mode, "seconds": job_seconds(mode, settings)})
            print(f"round {i + 1} {mode:>6}: {rows[-1]['seconds']:.1f} s", flush=True)
    mean = {m: sum(r["seconds"] for r in rows if r["mode"] == m) / args.rounds for m in MODES}
    ratio = mean["shared"] / mean["own"]
    print(f"job seconds, shared heap / per-thread heaps: {ratio:.2f}")
    result = {"machine": cpu_name(), "settings": settings, "rows": rows, "mean_s": mean,
              "shared_over_own": ratio, "when": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    report.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    report.main_guard(main)
