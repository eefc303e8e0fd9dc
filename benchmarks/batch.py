"""Batch throughput: ``impasto batch`` vs separate ``impasto`` runs, 1 vs 2 workers, Ray vs local.

8 jobs: 2 photos (example:chelsea, example:coffee) x 4 paintings (starry_night, great_wave,
the_scream, composition_viii) at 256 px, single scale (``--pyramid-start 0``) and a reduced
``--iterations`` (default 2, so the table fits in minutes on 2 heavily shared cores). Every
configuration is timed end to end as the commands a user would type (process start, torch
import, network load, all 8 jobs, writing the outputs), with the seeds the batch derives, so
every configuration does the same optimisation work:

* ``separate``: 8 ``impasto PHOTO PAINTING -o OUT`` invocations, one after the other;
* ``local 1x2``: ``impasto batch`` with one worker of 2 torch threads;
* ``local 2x1``: ``impasto batch`` with two worker processes of 1 thread each;
* ``ray``: ``impasto batch --backend ray`` starting its own local Ray (2 actors x 1 thread);
* ``ray joined``: the same, joining a Ray started beforehand with ``ray start --head``.

    python benchmarks/batch.py                    # writes benchmarks/results/batch.json
    python benchmarks/batch.py --iterations 4 --only local-1x2,separate
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PHOTOS = ("chelsea", "coffee")
PAINTINGS = ("starry_night", "great_wave", "the_scream", "composition_viii")
PY = sys.executable


def cpu_name() -> str:
    """The CPU's model name (and core count) from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _timed(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _flags(iterations: int, size: int) -> list[str]:
    return ["--size", str(size), "--iterations", str(iterations), "--pyramid-start", "0"]


def _batch(out: Path, flags: list[str], extra: list[str]) -> float:
    cmd = [PY, "-m", "impasto", "batch", "--contents", *(f"example:{p}" for p in PHOTOS)]
    cmd += ["--styles", *(f"example:{p}" for p in PAINTINGS), "-o", str(out), "-q", *flags]
    return _timed(cmd + extra)


def _separate(out: Path, flags: list[str], seeds: dict[str, int]) -> float:
    out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for p in PHOTOS:
        for s in PAINTINGS:
            name = f"{p}__{s}"
            cmd = [PY, "-m", "impasto", f"example:{p}", f"example:{s}", "-o", f"{out / name}.png"]
            total += _timed([*cmd, "-q", "--seed", str(seeds[name]), *flags])
    return total


def _ray_joined(out: Path, flags: list[str]) -> float:
    ray = str(Path(PY).with_name("ray"))
    start = [ray, "start", "--head", "--num-cpus", "2", "--include-dashboard", "false"]
    subprocess.run(start, check=True, capture_output=True)
    try:
        return _batch(out, flags, ["--backend", "ray", "--address", "auto", "--threads", "1"])
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True)


def _seeds(out: Path) -> dict[str, int]:
    recs = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {r["output"].rsplit(".", 1)[0]: r["seed"] for r in recs if r["status"] == "done"}


def _loadavg() -> float:
    return round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else float("nan")


def run(iterations: int, size: int, only: set[str] | None, on_row=None) -> dict:
    """Time every configuration (``on_row(rows)`` after each); returns the JSON-able results."""
    flags = _flags(iterations, size)
    configs = {
        "local-2x1": lambda d: _batch(d, flags, ["--workers", "2", "--threads", "1"]),
        "local-1x2": lambda d: _batch(d, flags, ["--workers", "1", "--threads", "2"]),
        "separate": None,  # needs the seeds of a batch run
        "ray": lambda d: _batch(d, flags, ["--backend", "ray", "--workers", "2", "--threads", "1"]),
        "ray-joined": lambda d: _ray_joined(d, flags),
    }
    root = Path(tempfile.mkdtemp(prefix="impasto-batch-bench-"))
    rows: dict[str, dict] = {}
    try:
        for name, fn in configs.items():
            if only and name not in only and not (name == "local-2x1" and "separate" in only):
                continue
            out = root / name
            load = _loadavg()
            if name == "separate":
                seconds = _separate(out, flags, _seeds(root / "local-2x1"))
            else:
                seconds = fn(out)
            rows[name] = {"seconds": round(seconds, 1), "loadavg_before": load}
            print(f"{name:11s} {seconds:7.1f} s   (load average before: {load})", flush=True)
            if on_row is not None:
                on_row(rows)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _ratios(rows: dict) -> dict:
    out = {}
    if "separate" in rows and "local-2x1" in rows:
        best = min(rows[k]["seconds"] for k in ("local-1x2", "local-2x1") if k in rows)
        out["speedup_batch_vs_separate"] = round(rows["separate"]["seconds"] / best, 2)
    if "local-2x1" in rows and "local-1x2" in rows:
        out["two_workers_vs_one"] = round(
            rows["local-1x2"]["seconds"] / rows["local-2x1"]["seconds"], 2
        )
    for ray in ("ray", "ray-joined"):
        if ray in rows and "local-2x1" in rows:
            base = rows["local-2x1"]["seconds"]
            out[f"{ray}_overhead_vs_local_2x1"] = round(rows[ray]["seconds"] / base - 1, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--only", default="", help="comma-separated configurations")
    ap.add_argument("--json", default=str(RESULTS / "batch.json"))
    args = ap.parse_args()
    only = {x for x in args.only.split(",") if x} or None
    cpu = cpu_name()
    print(f"CPU: {cpu} (shared with other work; load averages shown)\n8 jobs: 2 photos x 4 "
          f"paintings, {args.size} px, {args.iterations} iterations, pyramid off")  # fmt: skip

    def save(rows: dict) -> None:
        result = {
            "cpu": f"{cpu} (AVX2, no AVX-512; shared with other sessions)",
            "python": platform.python_version(),
            "jobs": 8,
            "size": args.size,
            "iterations": args.iterations,
            "pyramid_start": 0,
            "configs": rows,
            **_ratios(rows),
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")

    rows = run(args.iterations, args.size, only, on_row=save)
    for k, v in _ratios(rows).items():
        print(f"{k}: {v}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
