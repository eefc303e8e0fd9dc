"""How much memory a scale needs, and the plan that fits a budget: whole image or tiles of which
size, and which optimiser state (L-BFGS history, or Adam).

The model counts what backpropagation keeps per pixel of the network's input: the input, every
ReLU output and every pooling output up to the deepest layer (about 323 values per pixel up to
``relu5_1``, ~1.3 KB in float32), max-pooling indices (int64), the gradients handed to the
requested layers, and the two largest gradient buffers alive at once during the backward pass.
On top come image-sized tensors that tiles do not shrink: the image, its gradient, the fall-back
copy, the optimiser state (L-BFGS: about ``2 x history + 4`` image-sized vectors; Adam: 3) and
the photo's features at the content layers. A CPU measurement (AMD EPYC, float32, VGG19 to
relu5_1, 512-768 px) gave about 2.2 KB per pixel untiled against 2.3 KB modelled; tiles cost more
per crop pixel (allocator fragmentation across crops of several sizes), which :data:`SAFETY`
covers. Everything here is pure arithmetic, except :func:`available_memory`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .encoder.winograd import workspace_bytes
from .errors import SettingsError
from .layers import LAYER_NAMES, deepest, layer_channels, layer_stride
from .settings import CPU_FRACTION, GPU_FRACTION

__all__ = [
    "BASE_BYTES",
    "BUDGET_SETTING",
    "CPU_FRACTION",
    "GPU_FRACTION",
    "MAX_TILE",
    "MIN_HISTORY",
    "MIN_TILE",
    "TILE_HISTORY",
    "SAFETY",
    "MemoryPlan",
    "available_memory",
    "backward_bytes_per_pixel",
    "device_budget",
    "format_bytes",
    "optimiser_bytes",
    "parse_bytes",
    "plan_memory",
    "saved_values_per_pixel",
    "winograd_bytes_per_pixel",
]

#: The process before any image: Python, torch, the network's weights.
BASE_BYTES = 1 << 30
#: Multiplies the per-pixel network model (measured peaks exceed it by up to ~40 % with tiles).
SAFETY = 1.5
#: Below this tile side the halos cost more than shortening the L-BFGS history.
MIN_TILE = 512
#: Automatic tiles grow no larger: past it the halo's overhead is small ((2048 + 160)^2 / 2048^2
#: = 1.16) and smaller tiles report progress more often.
MAX_TILE = 2048
#: The shortest L-BFGS history chosen before switching to Adam.
MIN_HISTORY = 5
#: Tiles first shorten the asked L-BFGS history down to this where that makes them larger: a
#: history of 10 scored as 20 did (content x 0.996, style x 0.987, median of 6 pairs at 256 px;
#: README, "How the defaults were chosen"), and larger tiles pay less halo (4096 px on a Zen 5,
#: bf16: 9 tiles of 1472 px 0.68-0.83x the time of 36 of 720 px, two measurements).
TILE_HISTORY = 10
GB = 1e9
#: Where a budget comes from when it is given (the run's ``max_memory``, the server's): the source
#: :func:`device_budget` names, and the setting the errors ask to raise (the CLI names its flag,
#: ``--max-memory``: :func:`impasto.cli.named_as_flags`).
BUDGET_SETTING = "max_memory"

Channels = Callable[[str], int]


def _upto(last: str, names: Sequence[str]) -> list[str]:
    names = list(names)
    return names[: names.index(last) + 1]


def saved_values_per_pixel(
    last: str, names: Sequence[str] = LAYER_NAMES, channels: Channels = layer_channels
) -> float:
    """Values the backward pass keeps per input pixel up to ``last``: the network's input, each
    ReLU's output (in place over its convolution's) and each pooling's output."""
    total = 3.0
    for n in _upto(last, names):
        if n.startswith(("relu", "pool")):
            total += channels(n) / layer_stride(n) ** 2
    return total


def backward_bytes_per_pixel(
    layers: Sequence[str],
    pooling: str,
    dtype: torch.dtype,
    names: Sequence[str] = LAYER_NAMES,
    channels: Channels = layer_channels,
) -> float:
    """Bytes per input pixel at the peak of one forward + backward pass to ``layers`` (the
    model, before :data:`SAFETY`)."""
    last = deepest(layers)
    if last is None:
        return 0.0
    size = torch.empty((), dtype=dtype).element_size()
    upto = _upto(last, names)
    # the largest activation (a conv's output is as large as its ReLU's: conv1_1 alone has no
    # ReLU before it)
    acts = [channels(n) / layer_stride(n) ** 2 for n in upto if n.startswith(("conv", "relu"))]
    requested = sum(channels(n) / layer_stride(n) ** 2 for n in layers)
    values = saved_values_per_pixel(last, names, channels) + requested + 2 * max(acts)
    indices = 0.0
    if pooling == "max":
        indices = sum(channels(n) / layer_stride(n) ** 2 for n in upto if n.startswith("pool"))
    return values * size + 8 * indices


def winograd_bytes_per_pixel(
    last: str, names: Sequence[str] = LAYER_NAMES, channels: Channels = layer_channels
) -> float:
    """Bytes per input pixel of the workspace NNPACK keeps when the encoder runs by Winograd
    (:mod:`impasto.encoder.winograd`): the largest any convolution up to ``last`` needs."""
    worst, c_in = 0.0, 3
    for n in _upto(last, names):
        if n.startswith("conv"):
            pixels = 1 / layer_stride(n) ** 2
            worst = max(worst, workspace_bytes(c_in, channels(n), pixels))
        c_in = channels(n)
    return worst


def optimiser_bytes(optimizer: str, history: int, pixels: int, channels: int) -> int:
    """Image-sized state of the optimiser: L-BFGS keeps ``2 x history`` vectors plus its
    direction, previous gradient and two temporaries; Adam two moments and a temporary."""
    vectors = 2 * history + 4 if optimizer == "lbfgs" else 3
    return vectors * pixels * channels * 4


def _fixed_bytes(
    pixels: int,
    image_channels: int,
    content_layers: Sequence[str],
    regions: int,
    style_layers: Sequence[str],
    dtype: torch.dtype,
) -> int:
    """Image-sized tensors besides the optimiser's: image, gradient, fall-back copy and the
    photo at this size (float32), the content targets (network dtype) and region guides."""
    size = torch.empty((), dtype=dtype).element_size()
    image = (3 * image_channels + 3) * 4
    content = sum(layer_channels(n) / layer_stride(n) ** 2 for n in content_layers) * size
    guides = regions * sum(4 / layer_stride(n) ** 2 for n in style_layers)
    return BASE_BYTES + int(pixels * (image + content + guides))


@dataclass(frozen=True)
class MemoryPlan:
    """How a scale runs within a memory budget.

    Attributes:
        tile: owned tile side in px, or None for the whole image at once.
        halo: the tiles' halo in px (0 untiled).
        optimizer: ``"lbfgs"`` or ``"adam"``.
        history: L-BFGS history (0 for Adam).
        estimate: modelled peak bytes.
        budget: the budget in bytes.
        reason: one line for the log saying what was chosen and why.
    """

    tile: int | None
    halo: int
    optimizer: str
    history: int
    estimate: int
    budget: int
    reason: str


_SHOWN_UNITS = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3), ("B", 1))


def format_bytes(n: float, *, up: bool = False, digits: int = 0) -> str:
    """``1.5 TB`` / ``12.3 GB`` / ``512 MB`` / ``4 kB`` / ``12 B``: never a budget shown as
    ``0 MB``, nor one a user gave in TB as ``100000.0 GB``.

    ``up``: rounded up at the precision shown, for a least amount a user is told to give (given
    back, it suffices; rounded to nearest, ``1.14 GB`` read ``1.1 GB``). ``digits``: that many
    more decimals (down to single bytes)."""
    unit, scale = next((u, s) for u, s in _SHOWN_UNITS if n >= s or s == 1)
    places = min((unit in ("GB", "TB")) + digits, len(str(scale)) - 1)
    step = scale // 10**places  # bytes per last digit shown
    steps = -(-math.ceil(n) // step) if up else math.floor(n / step + 0.5)  # half up
    return f"{steps * step / scale:.{places}f} {unit}"


def _largest_tile(avail: float, per_px: float, halo: int, align: int, cap: int) -> int:
    """The largest multiple of ``align`` (at most ``cap``) whose crop fits ``avail`` bytes."""
    if avail <= 0:
        return 0
    side = int(math.sqrt(avail / per_px)) - 2 * halo
    return min(cap, side // align * align)


@dataclass(frozen=True)
class _Need:
    pixels: int
    cap: int
    halo: int
    align: int
    per_px: float
    fixed: int
    channels: int

    def opt(self, optimizer: str, history: int) -> int:
        return optimiser_bytes(optimizer, history, self.pixels, self.channels)

    def whole(self, optimizer: str, history: int) -> int:
        return int(self.fixed + self.opt(optimizer, history) + self.per_px * self.pixels)

    def tiled(self, tile: int, optimizer: str, history: int) -> int:
        crop = (tile + 2 * self.halo) ** 2
        return int(self.fixed + self.opt(optimizer, history) + self.per_px * crop)

    def tile_for(self, budget: int, optimizer: str, history: int) -> int:
        avail = budget - self.fixed - self.opt(optimizer, history)
        return _largest_tile(avail, self.per_px, self.halo, self.align, self.cap)


def plan_memory(
    size: tuple[int, int],
    *,
    layers: Sequence[str],
    content_layers: Sequence[str] = (),
    regions: int = 0,
    pooling: str,
    dtype: torch.dtype,
    winograd: bool = False,
    optimizer: str,
    history: int,
    budget: int,
    halo: int,
    align: int,
    image_channels: int = 3,
    tile: int | None = None,
    names: Sequence[str] = LAYER_NAMES,
    channels: Channels = layer_channels,
) -> MemoryPlan:
    """Choose whole image or tiles, and the optimiser state, for an ``(h, w)`` scale.

    The whole image when it fits with the requested optimiser. Otherwise the largest tiles that
    fit with the requested history (or one down to :data:`TILE_HISTORY` where that gives larger
    tiles), if at least :data:`MIN_TILE` px; else a shorter history (to :data:`MIN_HISTORY`);
    else Adam. A user's ``tile`` is kept (a multiple of ``align``); only the optimiser adapts.

    Args:
        size: ``(h, w)`` of the scale; layers: every layer the objective reads.
        content_layers: layers whose targets are stored at the image's resolution; regions:
            number of styled regions (their guides are stored per style layer).
        pooling: ``"max"`` or ``"avg"``; dtype: the network's arithmetic.
        winograd: whether it runs by Winograd (its workspace).
        optimizer: the optimiser asked for; history: its L-BFGS history.
        budget: bytes available (:func:`available_memory` or ``--max-memory``).
        halo: the exact halo (:func:`impasto.tiles.required_halo`); align: tile alignment.
        image_channels: 1 or 3; tile: a tile side forced by the user, or None; names: the
        network's layer order; channels: channels per layer.

    Raises:
        SettingsError: nothing fits (one line naming the sizes and the budget).
    """
    h, w = size
    need = _need(
        size, layers, content_layers, regions, pooling, dtype, halo, align, image_channels, names,
        channels, winograd,
    )  # fmt: skip
    hist = history if optimizer == "lbfgs" else 0
    whole = need.whole(optimizer, hist)
    label = f"{w}x{h}"
    if tile is not None:
        forced = max(align, tile // align * align)
        return _fit_state(need, forced, tile, optimizer, hist, budget, label)
    if whole <= budget:
        reason = f"{label}: whole image, ~{format_bytes(whole)} of {format_bytes(budget)}"
        return MemoryPlan(None, 0, optimizer, hist, whole, budget, reason)
    why = f"the whole image needs ~{format_bytes(whole)}, over {format_bytes(budget)}"
    return _fit_tiles(need, optimizer, hist, budget, label, why)


def _need(
    size, layers, content_layers, regions, pooling, dtype, halo, align, image_channels, names,
    channels, winograd,
) -> _Need:  # fmt: skip
    """What :func:`plan_memory` weighs: per-pixel network bytes, fixed bytes, tile limits."""
    h, w = size
    style = [n for n in layers if n not in content_layers]
    last = deepest(layers)
    workspace = winograd_bytes_per_pixel(last, names, channels) if winograd and last else 0.0
    return _Need(
        pixels=h * w,
        cap=min(align * math.ceil(max(h, w) / align), max(align, MAX_TILE // align * align)),
        halo=halo,
        align=align,
        per_px=SAFETY * backward_bytes_per_pixel(layers, pooling, dtype, names, channels)
        + workspace,
        fixed=_fixed_bytes(h * w, image_channels, content_layers, regions, style, dtype),
        channels=image_channels,
    )


def _plan(need: _Need, tile: int, opt: str, hist: int, budget: int, text: str) -> MemoryPlan:
    estimate = need.tiled(tile, opt, hist)
    return MemoryPlan(
        tile, need.halo, opt, hist, estimate, budget, f"{text}, ~{format_bytes(estimate)}"
    )


def _tiles_text(label: str, tile: int, halo: int, why: str) -> str:
    return f"{label}: tiles of {tile} px (+{halo} px halo) because {why}"


def _fit_state(
    need: _Need, tile: int, asked: int, optimizer: str, hist: int, budget: int, label: str
) -> MemoryPlan:
    """A forced tile (``asked``, aligned to ``tile``): keep it, shorten the L-BFGS history or
    switch to Adam if needed. The note is headed by the setting (``tile: ...``), which the CLI
    names as its flag."""
    text = f"tile: {label} in tiles of {tile} px (+{need.halo} px halo)"
    text += f", {asked} rounded down to a multiple of {need.align}" if tile != asked else ""
    if need.tiled(tile, optimizer, hist) <= budget:
        return _plan(need, tile, optimizer, hist, budget, text)
    if optimizer == "lbfgs":
        room = budget - need.tiled(tile, "lbfgs", 0)
        h = min(hist, room // (2 * need.pixels * need.channels * 4))
        if h >= MIN_HISTORY:
            return _plan(need, tile, "lbfgs", h, budget, f"{text}; L-BFGS history {hist} -> {h}")
    least = need.tiled(tile, "adam", 0)
    if least <= budget:
        return _plan(need, tile, "adam", 0, budget, f"{text}; Adam (no room for L-BFGS)")
    raise _too_big(least, budget, label, tile)


def _fit_tiles(
    need: _Need, optimizer: str, hist: int, budget: int, label: str, why: str
) -> MemoryPlan:
    """Automatic tiles: the largest tiles with the asked history, or with a history down to
    :data:`TILE_HISTORY` where that makes them larger; else a shorter one, else Adam."""
    k = _tile_history(need, budget, hist) if optimizer == "lbfgs" else hist
    t = need.tile_for(budget, optimizer, k)
    if t >= min(MIN_TILE, need.cap):
        text = _tiles_text(label, t, need.halo, why)
        text += f"; L-BFGS history {hist} -> {k} for larger tiles" if k != hist else ""
        return _plan(need, t, optimizer, k, budget, text)
    if optimizer == "lbfgs":
        small = min(MIN_TILE, need.cap)
        room = budget - need.tiled(small, "lbfgs", 0)
        h = min(hist, room // (2 * need.pixels * need.channels * 4))
        if h >= MIN_HISTORY:
            t = need.tile_for(budget, "lbfgs", h)
            text = _tiles_text(label, t, need.halo, why)
            return _plan(need, t, "lbfgs", h, budget, f"{text}; L-BFGS history {hist} -> {h}")
    t = need.tile_for(budget, "adam", 0)
    if t >= need.align:
        text = _tiles_text(label, t, need.halo, why)
        return _plan(need, t, "adam", 0, budget, f"{text}; Adam (no room for L-BFGS)")
    # the least that fits: the whole image, or the smallest tiles with Adam (2 bytes over the
    # model: its sums are rounded down, and a square root finds the tile)
    least = min(need.whole(optimizer, hist), need.tiled(need.align, "adam", 0) + 2)
    raise _too_big(least, budget, label)


def _tile_history(need: _Need, budget: int, hist: int) -> int:
    """The longest history, down to :data:`TILE_HISTORY`, that still gives the tiles the
    shortest of them would (a longer one than that only while tiles are at their largest)."""
    histories = range(hist, min(hist, TILE_HISTORY) - 1, -1)
    best = need.tile_for(budget, "lbfgs", histories[-1])
    return next(k for k in histories if need.tile_for(budget, "lbfgs", k) >= best)


def _too_big(least: int, budget: int, label: str, tile: int | None = None) -> SettingsError:
    """Nothing fits ``budget``: one line naming ``least``, the least budget that fits, rounded
    up (given back, it fits), each amount shown with the decimals that tell it from the others
    (``needs 1.1 GB, more than the 1.1 GB budget`` read as no shortfall). Each message is
    headed by the setting to change (the CLI names its flag)."""
    if budget <= BASE_BYTES:  # no size fits: the process itself is counted first
        given, base, need = _distinct((budget, False), (BASE_BYTES, False), (least, True))
        tiles = f" in tiles of {tile} px" if tile else ""
        return SettingsError(
            f"{BUDGET_SETTING}: a budget of {given} leaves no room beyond what the process "
            f"itself takes (~{base}: Python, torch, the network); raise it to at least ~{need} "
            f"for a {label} image{tiles}"
        )
    need, given = _distinct((least, True), (budget, False))
    if tile:
        what = f"tile: tiles of {tile} px need at least ~{need} here for a {label} image"
    else:
        what = f"size: a {label} image needs at least ~{need} here"
    return SettingsError(
        f"{what}, more than the {given} budget; lower it or raise {BUDGET_SETTING}"
    )


def _distinct(*amounts: tuple[int, bool]) -> list[str]:
    """The ``(bytes, rounded up)`` amounts as :func:`format_bytes` shows them, those that
    would read the same with as many more decimals as tell them apart (down to single bytes)."""
    digits = [0] * len(amounts)
    for _ in range(10):
        texts = [format_bytes(n, up=up, digits=d) for (n, up), d in zip(amounts, digits)]
        same = [i for i, text in enumerate(texts) if texts.count(text) > 1]
        for i in same:
            digits[i] += 1
        if not same:
            break
    return texts


_UNITS = {"": 1, "b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_bytes(text: str) -> int:
    """``"20G"``, ``"20 GB"``, ``"512M"``, ``"1.5g"``, ``"1000000"`` -> bytes (powers of 1000;
    ``GiB``/``MiB`` are powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgtKMGT]?)(i?)[bB]?\s*", text)
    if m is None or float(m[1]) <= 0:
        raise SettingsError(f"memory size must look like 20G, 512M or 1.5GB, got {text!r}")
    unit = m[2].lower()
    scale = 1024 ** "kmgt".index(unit) * 1024 if m[3] and unit else _UNITS[unit]
    return round(float(m[1]) * scale)  # not int(): 1.13 x 1e9 may fall a byte short


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < 1 << 60:
            return int(value)
    return None


def available_memory(device: torch.device) -> tuple[int, str]:
    """The default budget on ``device`` and where it comes from: :data:`CPU_FRACTION` of the RAM
    (or of the container's limit) on the CPU and MPS, :data:`GPU_FRACTION` of the free memory on
    a CUDA GPU (both defined in :mod:`impasto.settings`, whose help texts state them)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        share = f"{GPU_FRACTION:.0%} of the {format_bytes(free)} free on the GPU"
        return int(GPU_FRACTION * free), share
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_limit()
    where = "RAM"
    if limit is not None and limit < total:
        total, where = limit, "container's memory limit"
    share = f"{CPU_FRACTION:.0%} of the {format_bytes(total)} {where}"
    return int(CPU_FRACTION * total), share


def device_budget(max_memory: int | None, device: torch.device) -> tuple[int, str]:
    """The memory budget of a run on ``device`` and where it comes from: ``max_memory`` when
    given (:data:`BUDGET_SETTING`), else :func:`available_memory` (the engine's run and the web
    server's capacity both choose it here)."""
    if max_memory:
        return max_memory, BUDGET_SETTING
    return available_memory(device)
