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

Configurations are run in the order of ``--sequence`` (a name may repeat: later runs are
recorded as ``NAME#2``, ...). The default brackets each Ray run between local runs and puts
``separate`` right after a local run, so every ratio compares runs made back to back on the
shared machine (the load average before each run is recorded). Rows of an earlier run that are
not measured again are kept, marked ``"earlier_run": true``.

    python benchmarks/batch.py                    # writes benchmarks/results/batch.json
    python benchmarks/batch.py --iterations 4 --sequence local-2x1,local-1x2
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
if str(HERE.parent) not in sys.path:  # benchmarks.isa, when run as a script
    sys.path.insert(0, str(HERE.parent))
RESULTS = HERE / "results"
PHOTOS = ("chelsea", "coffee")
PAINTINGS = ("starry_night", "great_wave", "the_scream", "composition_viii")
PY = sys.executable

from benchmarks import isa, report  # noqa: E402


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


CONFIGS = ("local-2x1", "local-1x2", "separate", "ray", "ray-joined")
DEFAULT_SEQUENCE = "local-2x1,ray,ray-joined,local-2x1,separate"


def _config(name: str, flags: list[str], root: Path):
    """The timing function of configuration ``name`` (output folder -> seconds)."""
    if name == "separate":  # the seeds of the first batch run: the same optimisation work
        return lambda d: _separate(d, flags, _seeds(root / "local-2x1"))
    extra = {
        "local-2x1": ["--workers", "2", "--threads", "1"],
        "local-1x2": ["--workers", "1", "--threads", "2"],
        "ray": ["--backend", "ray", "--workers", "2", "--threads", "1"],
    }
    if name == "ray-joined":
        return lambda d: _ray_joined(d, flags)
    return lambda d: _batch(d, flags, extra[name])


def run(iterations: int, size: int, sequence: list[str], on_row=None) -> dict:
    """Time the configurations in ``sequence`` order (``on_row(rows)`` after each)."""
    flags = _flags(iterations, size)
    if "separate" in sequence and "local-2x1" not in sequence[: sequence.index("separate")]:
        sequence = ["local-2x1", *sequence]  # separate needs the seeds of a batch run
    root = Path(tempfile.mkdtemp(prefix="impasto-batch-bench-"))
    rows: dict[str, dict] = {}
    seen: dict[str, int] = {}
    try:
        for name in sequence:
            seen[name] = seen.get(name, 0) + 1
            key = name if seen[name] == 1 else f"{name}#{seen[name]}"
            out = root / key
            load = _loadavg()
            seconds = _config(name, flags, root)(out)
            rows[key] = {"seconds": round(seconds, 1), "loadavg_before": load, "order": len(rows)}
            print(f"{key:13s} {seconds:7.1f} s   (load average before: {load})", flush=True)
            if on_row is not None:
                on_row(rows)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _neighbours(rows: dict, key: str, base: str) -> list[float]:
    """Seconds of the ``base`` runs measured just before and just after row ``key``."""
    order = rows[key].get("order")
    if order is None:
        return []
    runs = [
        (r["order"], r["seconds"])
        for k, r in rows.items()
        if k.split("#")[0] == base and r.get("order") is not None
    ]
    before = [s for o, s in runs if o == order - 1]
    after = [s for o, s in runs if o == order + 1]
    return before + after


def _ratios(rows: dict) -> dict:
    """Ratios of runs made back to back (local runs next to the run compared)."""
    out: dict = {}
    if "separate" in rows:
        local = _neighbours(rows, "separate", "local-2x1")
        if local:
            out["speedup_batch_vs_separate"] = round(rows["separate"]["seconds"] / local[0], 2)
    if "local-2x1" in rows and "local-1x2" in rows:
        out["two_workers_vs_one"] = round(
            rows["local-1x2"]["seconds"] / rows["local-2x1"]["seconds"], 2
        )
    for ray in ("ray", "ray-joined"):
        if ray in rows:
            local = _neighbours(rows, ray, "local-2x1")
            if local:
                base = sum(local) / len(local)
                out[f"{ray}_overhead_vs_local_2x1"] = round(rows[ray]["seconds"] / base - 1, 3)
    return out


def _earlier_rows(path: Path, iterations: int, size: int) -> dict:
    """Rows of an earlier run with the same settings, marked as such (no run order)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if old.get("iterations") != iterations or old.get("size") != size:
        return {}
    rows = {}
    for k, r in old.get("configs", {}).items():
        rows[k] = {key: v for key, v in r.items() if key != "order"} | {"earlier_run": True}
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--iterations", type=report.at_least(1), default=2)
    ap.add_argument("--size", type=report.size_type, default=256)
    ap.add_argument("--sequence", default=DEFAULT_SEQUENCE, help="comma-separated, in order")
    ap.add_argument("--json", default=str(RESULTS / "batch.json"))
    args = ap.parse_args(argv)
    sequence = [x for x in args.sequence.split(",") if x]
    unknown = sorted(set(sequence) - set(CONFIGS))
    if unknown:
        ap.error(f"unknown configuration(s) {unknown}; choose from {', '.join(CONFIGS)}")
    machine = isa.machine(None)  # what the CPU has, as read from it
    cpu = f"{machine['processor']}, {os.cpu_count()} cores ({machine['vector_instructions']})"
    earlier = _earlier_rows(Path(args.json), args.iterations, args.size)
    earlier_ratios = _ratios({k: v for k, v in earlier.items()}) if earlier else {}
    print(f"CPU: {cpu}; the load average before each run is shown\n8 jobs: 2 photos x 4 "
          f"paintings, {args.size} px, {args.iterations} iterations, pyramid off")  # fmt: skip

    def save(rows: dict) -> None:
        kept = {k: v for k, v in earlier.items() if k not in rows}
        result = {
            "cpu": cpu,
            "machine": machine,
            "python": platform.python_version(),
            "jobs": 8,
            "size": args.size,
            "iterations": args.iterations,
            "pyramid_start": 0,
            "sequence": sequence,
            "configs": {**rows, **kept},
            **_ratios(rows),
        }
        if "two_workers_vs_one" not in result and "two_workers_vs_one" in earlier_ratios:
            result["two_workers_vs_one_earlier_run"] = earlier_ratios["two_workers_vs_one"]
        report.write_json(Path(args.json), result, quiet=True)

    rows = run(args.iterations, args.size, sequence, on_row=save)
    for k, v in _ratios(rows).items():
        print(f"{k}: {v}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    report.main_guard(main)
