"""The README's first command, timed whole, for one or more versions of impasto side by side.

Each version is a git commit of this repository (``HEAD``, ``2417b47``, ...) or ``.`` (the
working tree). Its ``src`` is exported to a temporary folder and the command runs as a fresh
process with that ``src`` first on ``PYTHONPATH``, in this environment, so only impasto's own code
differs. Versions alternate round by round (A B A B ...) so that drift in the machine falls on
both. Wall time and the process's peak RSS per run; each version's median and its ratio to the
first version's.

    python benchmarks/first_command.py --versions HEAD,2417b47 --rounds 2 \\
        --json benchmarks/results/first_command_versions.json
    python benchmarks/first_command.py --isa avx2 --versions HEAD,2417b47 ...
                                               # torch capped at AVX2's kernels (isa.py)

``--args`` replaces the command's own options (tests run a tiny one).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # benchmarks.isa, when run as a script
    sys.path.insert(0, str(ROOT))

from benchmarks import isa, report  # noqa: E402

COMMAND = ["example:chelsea", "example:starry_night", "-o", "{out}", "-q"]


def commit_of(version: str) -> str:
    """The commit ``version`` names (``.``: HEAD's, plus ``+changes`` when the tree differs)."""
    git = ["git", "-C", str(ROOT)]
    rev = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD" if version == "." else version],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if rev.returncode != 0:
        raise SystemExit(f"no version {version!r}: {rev.stderr.strip()}")
    dirty = (
        version == "." and subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "src"]).returncode
    )
    return rev.stdout.strip() + ("+changes" if dirty else "")


def export_src(version: str, into: Path) -> Path:
    """``version``'s ``src`` folder under ``into``: the working tree's for ``.``."""
    if version == ".":
        return ROOT / "src"
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", version, "src"],
        capture_output=True,
        check=False,
    )
    if tar.returncode != 0:
        raise SystemExit(f"no version {version!r}: {tar.stderr.decode().strip()}")
    dest = into / version.replace("/", "_")
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        t.extractall(dest, filter="data")
    return dest / "src"


def run_once(src: Path, args: list[str], out: Path) -> dict:
    """One run of the command with ``src`` first on the path: wall seconds and peak RSS."""
    path = os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    argv = [sys.executable, "-m", "impasto", *(a.format(out=out) for a in args)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0 or not out.is_file():
        why = f"exit {proc.returncode}" if proc.returncode else "no output written"
        raise SystemExit(f"impasto from {src}: {why}:\n{err[-2000:]}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def summarise(rows: list[dict], versions: list[str]) -> list[dict]:
    """Each version's median wall time and peak RSS, and its time over the first version's."""
    med = {v: statistics.median(r["wall_s"] for r in rows if r["version"] == v) for v in versions}
    return [
        {
            "version": v,
            "median_wall_s": med[v],
            "max_peak_rss_mb": max(r["peak_rss_mb"] for r in rows if r["version"] == v),
            "over_first": round(med[v] / med[versions[0]], 3),
        }
        for v in versions
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--versions", default="HEAD", help="comma-separated commits, or . (the tree)")
    p.add_argument("--rounds", type=report.at_least(1), default=2)
    p.add_argument("--isa", choices=sorted(isa.CAPS), help="cap torch's kernels (isa.py)")
    p.add_argument("--args", help="the command's options instead of the README's, one string")
    p.add_argument("--json", type=Path, default=HERE / "results" / "first_command_versions.json")
    args = p.parse_args(argv)
    isa.cap(args.isa)
    isa.check(args.isa)
    versions = args.versions.split(",")
    commits = {v: commit_of(v) for v in versions}  # before any run: a bad name fails at once
    command = args.args.split() if args.args else COMMAND
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        srcs = {v: export_src(v, Path(tmp)) for v in versions}
        for rnd in range(args.rounds):
            for v in versions:
                load = isa.load_average()
                row = run_once(srcs[v], command, Path(tmp) / f"out_{rnd}.png")
                rows.append({"version": v, "round": rnd, **row, "load_before": load})
                print(f"round {rnd} {v:>10}: {row['wall_s']:7.1f} s "
                      f"{row['peak_rss_mb']:6d} MB  (load {load[0]:.2f})", flush=True)  # fmt: skip
    summary = [{**s, "commit": commits[s["version"]]} for s in summarise(rows, versions)]
    for s in summary:
        print(f"{s['version']:>10}: median {s['median_wall_s']:.1f} s, "
              f"x{s['over_first']:.3f} of {versions[0]}")  # fmt: skip
    result = {
        "what": "README's first command, each version's src on PYTHONPATH, alternated",
        "command": ["impasto", *command],
        "machine": isa.machine(args.isa),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "rows": rows,
        "summary": summary,
    }
    report.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    report.main_guard(main)
