"""impasto's default against its peers' defaults on many photo x painting pairs: quality and time.

Twelve pairs from the project's shared test set (copied into ``benchmarks/pairs/`` with their
credits) use every one of its 7 photos and 10 paintings at least once. On each pair, at one output
size (default 256 px long side), three tools run at their own defaults:

* impasto (the product's current defaults, through its CLI in a subprocess, like the peers);
* pastiche (1000 L-BFGS iterations) and neural-style-pt (1000 L-BFGS iterations), each in its own
  subprocess (``benchmarks/peers.py``). Their results are deterministic per seed, so they are
  cached on disk by (tool, pair, size, seed, iterations, device) and rerun only when asked.

Every final image is scored by the fixed evaluator (``evaluator.py``: relative content error at
relu4_2, mean relative Gram error over relu1_1..relu5_1; original VGG19, max pooling). The table
gives, per pair and peer, impasto's content and style errors and wall time as ratios to the peer's
(target: content <= 1.05x and style <= 1.05x of pastiche's on >= 10 of 12 pairs, in <= 1/8 of its
time). Wall times are whole processes (interpreter start, weights, targets, optimisation); each
peer's *loop* time (its iterations only, from its timed snapshots) is reported beside it.

    python benchmarks/compare.py                          # 12 pairs, 256 px, CPU
    python benchmarks/compare.py --pairs chelsea_starry_night,astronaut_the_scream
    python benchmarks/compare.py --device cuda --size 512 --pairs ...   # on a GPU machine
    python benchmarks/compare.py --merge a/compare_256.json b/compare_256.json  # no runs

``--merge`` joins reports written by separate runs (for example a long peer run split in two)
into one ``<out>/compare_<size>.json``: pairs are taken whole, a later file's pair replacing an
earlier one's, and the summary is recomputed. Reports of different sizes or devices are refused.

Writes ``<out>/compare_<size>.json`` and side-by-side sheets ``compare_<pair>_<size>.png``
(photo, painting, impasto, pastiche, neural-style, each captioned with its numbers and time) for
the first ``--sheets`` pairs. Requires the peers (``bash benchmarks/setup_peers.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks import report  # noqa: E402
from benchmarks.evaluator import PairScorer  # noqa: E402
from benchmarks.peers import (  # noqa: E402
    DEFAULT_ITERATIONS,
    PEERS,
    available_peers,
    run_measured,
    run_peer,
)
from impasto.devices import cpu_name  # noqa: E402

RESULTS = HERE / "results"
PAIR_DIR = HERE / "pairs"
WORK = HERE / "_work" / "compare"
PEER_CACHE = HERE / "_work" / "peer_cache"
TOLERANCE = 1.05

#: name -> (photo, painting) in benchmarks/pairs/: every photo and painting at least once.
PAIRS: dict[str, tuple[str, str]] = {
    "chelsea_starry_night": ("chelsea.png", "starry_night.jpg"),
    "astronaut_the_scream": ("astronaut.png", "the_scream.jpg"),
    "coffee_great_wave": ("coffee.png", "great_wave.jpg"),
    "rocket_shipwreck_minotaur": ("rocket.jpg", "shipwreck_minotaur.jpg"),
    "camera_composition_viii": ("camera.png", "composition_viii.jpg"),
    "grace_hopper_the_kiss": ("grace_hopper.jpg", "the_kiss.jpg"),
    "china_water_lilies": ("china.jpg", "water_lilies.jpg"),
    "chelsea_grande_jatte_study": ("chelsea.png", "grande_jatte_study.jpg"),
    "coffee_te_fare": ("coffee.png", "te_fare.jpg"),
    "astronaut_dance_foyer": ("astronaut.png", "dance_foyer.jpg"),
    "china_starry_night": ("china.jpg", "starry_night.jpg"),
    "grace_hopper_composition_viii": ("grace_hopper.jpg", "composition_viii.jpg"),
}
#: the pairs confirmed at 512 px
CONFIRM_PAIRS = ("chelsea_starry_night", "astronaut_the_scream", "china_water_lilies")
#: pairs no default was chosen on (``--pairs held-out``): one per photo, seven paintings, none of
#: them a pair of PAIRS (:func:`draw_held_out`, seed 20261201)
HELD_OUT: dict[str, tuple[str, str]] = {
    "astronaut_great_wave": ("astronaut.png", "great_wave.jpg"),
    "camera_starry_night": ("camera.png", "starry_night.jpg"),
    "chelsea_dance_foyer": ("chelsea.png", "dance_foyer.jpg"),
    "china_grande_jatte_study": ("china.jpg", "grande_jatte_study.jpg"),
    "coffee_shipwreck_minotaur": ("coffee.png", "shipwreck_minotaur.jpg"),
    "grace_hopper_te_fare": ("grace_hopper.jpg", "te_fare.jpg"),
    "rocket_composition_viii": ("rocket.jpg", "composition_viii.jpg"),
}
#: every named pair
ALL_PAIRS = {**PAIRS, **HELD_OUT}


def draw_held_out(seed: int = 20261201) -> dict[str, tuple[str, str]]:
    """The draw that gave :data:`HELD_OUT` (a test checks they agree): each photo in turn takes
    a random painting that no earlier photo took, from its pairs outside :data:`PAIRS`."""
    photos = sorted({p for p, _ in PAIRS.values()})
    paintings = sorted({s for _, s in PAIRS.values()})
    used, rng, drawn = set(PAIRS.values()), random.Random(seed), []
    for photo in photos:
        taken = {s for _, s in drawn}
        free = [(photo, s) for s in paintings if (photo, s) not in used and s not in taken]
        drawn.append(rng.choice(free))
    return {f"{Path(p).stem}_{Path(s).stem}": (p, s) for p, s in drawn}


def pair_paths(pair: str) -> tuple[Path, Path]:
    """The (photo, painting) files of a named pair."""
    photo, painting = ALL_PAIRS[pair]
    return PAIR_DIR / photo, PAIR_DIR / painting


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    info = {
        "platform": platform.platform(),
        "processor": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def loop_seconds(snapshots: list, steps: list[int], iterations: int) -> float | None:
    """A run's optimisation time alone: the rate between its first and last timed snapshot,
    times its iterations (so interpreter start, model loading and targets are left out)."""
    if len(snapshots) < 2 or steps[-1] == steps[0]:
        return None
    rate = (snapshots[-1][0] - snapshots[0][0]) / (steps[-1] - steps[0])
    return rate * iterations


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(tmp, path)


def peer_result(
    tool: str,
    pair: str,
    size: int,
    *,
    device: str = "cpu",
    seed: int = 0,
    iterations: int | None = None,
    cache: Path = PEER_CACHE,
    refresh: bool = False,
    cached_only: bool = False,
) -> dict | None:
    """One peer's run on one pair: from the cache when there, else run (and cached); None when
    it is not cached and ``cached_only``.

    Returns ``{"tool", "output", "wall_s", "loop_s", "peak_rss_mb", "iterations", "cached"}``.
    """
    its = iterations if iterations is not None else DEFAULT_ITERATIONS[tool]
    kind = "cuda" if device.startswith("cuda") else device
    folder = cache / f"{tool}_{pair}_{size}px_seed{seed}_{its}it_{kind}"
    record = folder / "run.json"
    if record.is_file() and not refresh:
        return {**json.loads(record.read_text()), "cached": True}
    if cached_only:
        return None
    content, style = pair_paths(pair)
    run = run_peer(
        tool,
        content,
        style,
        folder,
        size=size,
        iterations=iterations,
        snapshot_every=max(1, its // 10),
        seed=seed,
        device=device,
    )
    data = {
        "tool": tool,
        "pair": pair,
        "size": size,
        "device": device,
        "output": str(run.output),
        "wall_s": run.wall_s,
        "loop_s": loop_seconds(run.snapshots, run.snapshot_iterations, its),
        "peak_rss_mb": run.peak_rss_mb,
        "iterations": its,
    }
    _write_json(record, data)
    return {**data, "cached": False}


def impasto_cli(
    pair: str,
    size: int,
    out_dir: Path,
    *,
    device: str = "cpu",
    seed: int = 0,
    extra: tuple[str, ...] = (),
) -> dict:
    """impasto's defaults through its CLI in a subprocess (timed like the peers)."""
    content, style = pair_paths(pair)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / "output.png"
    cmd = [sys.executable, "-m", "impasto", str(content), str(style), "-o", str(output), "-q"]
    cmd += ["--seed", str(seed), "--size", str(size), "--device", device, *extra]
    stats = run_measured(cmd, out_dir / "impasto.log")
    if stats.returncode != 0:  # the headline, then the log's tail (report.error_line)
        tail = (out_dir / "impasto.log").read_text(errors="replace")[-1500:]
        raise report.BenchError(f"impasto failed on {pair}:\n{tail}")
    return {
        "tool": "impasto",
        "pair": pair,
        "size": size,
        "output": str(output),
        "wall_s": stats.wall_s,
        "peak_rss_mb": stats.peak_rss_mb,
        "args": list(extra),
    }


def ratios(mine: dict, peer: dict) -> dict:
    """impasto's numbers as ratios of a peer's (lower is better; time on process wall)."""
    out = {
        "content_ratio": mine["content"] / peer["content"],
        "style_ratio": mine["style"] / peer["style"],
        "time_ratio": mine["wall_s"] / peer["wall_s"],
    }
    out["at_least_as_good"] = out["content_ratio"] <= TOLERANCE and out["style_ratio"] <= TOLERANCE
    return out


def side_by_side(pair: str, entries: list[tuple[str, dict]], path: Path, cell: int = 256) -> None:
    """photo | painting | each tool's result, captioned with its errors and time."""
    from PIL import Image, ImageDraw, ImageFont

    content, style = pair_paths(pair)
    tiles = [("photo", Image.open(content), ""), ("painting", Image.open(style), "")]
    for name, r in entries:
        cap = f"content {r['content']:.3f}  style {r['style']:.3f}  {r['wall_s']:.1f} s"
        tiles.append((name, Image.open(r["output"]), cap))
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:
        font = ImageFont.load_default()
    pad, text_h = 6, 36
    sheet = Image.new("RGB", (len(tiles) * (cell + pad) + pad, cell + text_h + 2 * pad), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (name, im, cap) in enumerate(tiles):
        im = im.convert("RGB")
        im.thumbnail((cell, cell), Image.LANCZOS)
        x = pad + k * (cell + pad)
        sheet.paste(im, (x + (cell - im.width) // 2, pad + (cell - im.height) // 2))
        draw.text((x, cell + pad + 2), name, fill="black", font=font)
        draw.text((x, cell + pad + 18), cap, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    sheet.save(tmp)
    os.replace(tmp, path)


def print_table(report: dict) -> None:
    """Per pair: each tool's numbers, then impasto's ratios to each peer."""
    print(f"\n{'pair':<30} {'tool':<13} {'content':>8} {'style':>8} {'wall s':>8} {'loop s':>7}")
    for pair, entry in report["pairs"].items():
        for r in entry["runs"]:
            loop = f"{r['loop_s']:7.1f}" if r.get("loop_s") else "       "
            print(
                f"{pair:<30} {r['tool']:<13} {r['content']:8.3f} {r['style']:8.3f} "
                f"{r['wall_s']:8.1f} {loop}"
            )
    print(f"\n{'pair':<30} {'vs':<13} {'content x':>9} {'style x':>8} {'time x':>8}  ok")
    for pair, entry in report["pairs"].items():
        for peer, v in entry["vs"].items():
            print(
                f"{pair:<30} {peer:<13} {v['content_ratio']:9.3f} {v['style_ratio']:8.3f} "
                f"{v['time_ratio']:8.3f}  {'yes' if v['at_least_as_good'] else 'no'}"
            )
    for peer, s in report.get("summary", {}).items():
        print(
            f"vs {peer}: at least as good on {s['wins']}/{s['pairs']} pairs; "
            f"median time ratio {s['median_time_ratio']:.3f}"
        )


def summarise(report: dict) -> dict:
    """Per peer: on how many pairs impasto is at least as good, and the median time ratio."""
    out: dict = {}
    for entry in report["pairs"].values():
        for peer, v in entry["vs"].items():
            s = out.setdefault(peer, {"pairs": 0, "wins": 0, "time_ratios": []})
            s["pairs"] += 1
            s["wins"] += int(v["at_least_as_good"])
            s["time_ratios"].append(v["time_ratio"])
    for s in out.values():
        t = sorted(s.pop("time_ratios"))
        s["median_time_ratio"] = t[len(t) // 2]
    return out


def _slug(extra_args: str) -> str:
    """A folder suffix for runs with extra impasto arguments ("" for the defaults)."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "_", extra_args).strip("_")
    return f"_{slug}" if slug else ""


def merge_reports(reports: list[dict]) -> dict:
    """One report from several of the same size and device: pairs taken whole (a later
    report's pair replaces an earlier one's), machine and date kept per source, summary redone."""
    if not reports:
        raise ValueError("nothing to merge")
    kinds = {(r["size"], r["device"]) for r in reports}
    if len(kinds) > 1:
        raise ValueError(f"reports differ in (size, device): {sorted(kinds)}")
    merged: dict = {
        "size": reports[0]["size"],
        "device": reports[0]["device"],
        "machine": reports[-1]["machine"],
        "when": max(r["when"] for r in reports),
        "merged_from": [{"when": r["when"], "pairs": list(r["pairs"])} for r in reports],
        "pairs": {},
    }
    for r in reports:
        merged["pairs"].update(r["pairs"])
    merged["summary"] = summarise(merged)
    return merged


def _merge_main(files: list[Path], out: Path) -> int:
    try:
        report = merge_reports([json.loads(f.read_text()) for f in files])
    except (OSError, ValueError, KeyError) as e:
        print(f"compare.py: cannot merge: {e}", file=sys.stderr)
        return 2
    out_json = out / f"compare_{report['size']}.json"
    _write_json(out_json, report)
    print_table(report)
    print(f"wrote {out_json}")
    return 0


def choose_peers(asked: str | None, cached_only: bool = False) -> list[str]:
    """The peers to run: those ``asked`` (comma-separated), each known and installed here (a
    ``--cached-only`` run needs no installed peer: it only reads the cache), or else every
    installed one. Refused up front, before impasto's first run (:class:`report.BenchError`)."""
    installed = available_peers()
    if not asked:
        return installed
    peers = [x for x in asked.split(",") if x]
    unknown = [x for x in peers if x not in PEERS]
    if unknown:
        raise report.BenchError(
            f"--peers: unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}"
        )
    missing = [x for x in peers if x not in installed]
    if missing and not cached_only:
        raise report.BenchError(
            f"--peers: {', '.join(missing)} not installed here (installed: "
            f"{', '.join(installed) or 'none'}); bash benchmarks/setup_peers.sh installs them, "
            "or --cached-only reads earlier runs"
        )
    return peers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--pairs",
        default=",".join(PAIRS),
        help="comma-separated pair names; 'held-out' adds the pairs no default was chosen on",
    )
    p.add_argument("--size", type=report.size_type, default=256)
    p.add_argument("--device", default="cpu", help="cpu or cuda (every tool runs there)")
    p.add_argument(
        "--peers",
        default=None,
        help=f"comma-separated subset of the installed peers ({', '.join(PEERS)}; default: "
        "every installed one)",
    )
    p.add_argument(
        "--peer-iterations", type=report.at_least(1), default=None, help="default: each peer's own"
    )
    p.add_argument("--refresh", action="store_true", help="rerun peers even when cached")
    p.add_argument(
        "--cached-only", action="store_true", help="leave out peer runs not in the cache"
    )
    p.add_argument(
        "--impasto-args",
        default="",
        help="extra impasto CLI arguments, one string. A value that starts with '-' and has no "
        "space needs '=', as in --impasto-args=--quiet (with a space argparse takes it for an "
        "option of this script's and stops: 'expected one argument'); a value with a space, "
        'such as "--tv-weight 3", works either way',
    )
    p.add_argument(
        "--sheets", type=report.at_least(0), default=4, help="side-by-side sheets for N pairs"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--merge", type=Path, nargs="+", metavar="JSON", help="join reports; run nothing"
    )
    args = p.parse_args(argv)
    if args.merge:
        return _merge_main(args.merge, args.out)
    pairs = [y for x in args.pairs.split(",") if x for y in (HELD_OUT if x == "held-out" else [x])]
    unknown = [x for x in pairs if x not in ALL_PAIRS]
    if unknown:
        p.error(f"unknown pair(s) {', '.join(unknown)}; known: {', '.join(ALL_PAIRS)}, held-out")
    peers = choose_peers(args.peers, args.cached_only)
    result: dict = {
        "size": args.size,
        "device": args.device,
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "pairs": {},
    }
    out_json = args.out / f"compare_{args.size}.json"
    for k, pair in enumerate(pairs):
        scorer = PairScorer(*pair_paths(pair), device=args.device)
        print(f"[{pair}] impasto", flush=True)
        runs = [
            impasto_cli(
                pair,
                args.size,
                WORK / pair / f"impasto_{args.size}{_slug(args.impasto_args)}",
                device=args.device,
                seed=args.seed,
                extra=tuple(args.impasto_args.split()),
            )
        ]
        for tool in peers:
            print(f"[{pair}] {tool}", flush=True)
            run = peer_result(
                tool,
                pair,
                args.size,
                device=args.device,
                seed=args.seed,
                iterations=args.peer_iterations,
                refresh=args.refresh,
                cached_only=args.cached_only,
            )
            if run is not None:
                runs.append(run)
        for r in runs:
            r.update(scorer.score(r["output"]))
        vs = {r["tool"]: ratios(runs[0], r) for r in runs[1:]}
        result["pairs"][pair] = {"runs": runs, "vs": vs}
        if k < args.sheets:
            side_by_side(
                pair, [(r["tool"], r) for r in runs], args.out / f"compare_{pair}_{args.size}.png"
            )
        result["summary"] = summarise(result)
        _write_json(out_json, result)
    print_table(result)
    print(f"wrote {out_json}")
    return 0


if __name__ == "__main__":
    report.main_guard(main)
