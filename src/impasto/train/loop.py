"""The training loop: SGD (lr 0.01, momentum 0.9, weight decay 5e-4, as the method's network was
trained), a step or cosine schedule, bf16 autocast only where it is fast, a held-out validation
split, atomic checkpoints every N steps and at each epoch, and exact ``resume``.

Exactness: batches come from a seeded permutation per epoch (``DistributedSampler``), crops and
flips from (seed, epoch, image), and a checkpoint records the position inside the epoch, the
optimizer's momentum and the running sums, so a resumed run ends with the same weights and
metrics as an uninterrupted one. The library prints nothing: progress goes to a callback.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from ..allocator import keep_freed_memory
from ..devices import resolve_device, resolve_dtype
from ..encoder.arch import Arch
from ..errors import SettingsError
from . import ddp
from .config import MIN_SIZE, SCHEDULES, TrainConfig
from .data import Augment, ImageDataset, collate, compute_stats, open_source, split_indices
from .model import build_model
from .store import CHECKPOINT, read_checkpoint, write_checkpoint, write_metrics

__all__ = ["TrainConfig", "TrainProgress", "TrainResult", "train", "lr_at", "SCHEDULES"]

# Settings a resumed run must share with the checkpoint (they decide which images form a batch).
_SAME_ON_RESUME = (
    "data",
    "arch",
    "width",
    "size",
    "batch_size",
    "seed",
    "val_fraction",
    "val_data",
)


@dataclass
class TrainProgress:
    """What a progress bar shows; ``phase`` is ``"step"`` or ``"epoch"`` (then ``metrics`` is the
    finished epoch's row). ``loss`` and ``accuracy`` are the epoch's running means so far: at a
    step, over this process's images (rank 0's under torchrun, which alone reports); at the
    epoch's end, over every rank's (the row's ``train_loss`` and ``train_accuracy``); NaN when
    no image was seen."""

    phase: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    accuracy: float
    images_per_s: float
    eta_s: float
    metrics: dict | None = None


@dataclass
class TrainResult:
    metrics: list[dict]
    checkpoint: Path
    arch: Arch
    finished: bool
    skipped_names: list[str] = field(default_factory=list)


def lr_at(cfg: TrainConfig, epoch: int, step: int, steps: int) -> float:
    """Learning rate at ``step`` of ``epoch`` (``steps`` per epoch)."""
    if cfg.schedule == "cosine":
        t, total = epoch * steps + step, max(1, cfg.epochs * steps)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total))
    every = cfg.step_epochs or max(1, cfg.epochs // 3)
    return cfg.lr * cfg.gamma ** (epoch // every)


def _running_means(sums: list[float], row: dict | None) -> tuple[float, float]:
    """Loss and accuracy for a progress event: from the running sums at a step, from the
    finished epoch's row (gathered over every rank; its sums are reset by then) at its end."""
    if row is not None:
        pair = (row["train_loss"], row["train_accuracy"])
        return tuple(float("nan") if v is None else v for v in pair)  # type: ignore[return-value]
    loss, correct, seen = sums
    return (loss / seen, correct / seen) if seen else (float("nan"), float("nan"))


def _finite(row: dict) -> dict:
    """NaN (no validation images, say) as None, so metrics.jsonl stays strict JSON."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def _check_numbers(cfg: TrainConfig) -> None:
    """Refuse numbers the loop cannot train with (they were internal errors from torch, or a
    run that diverged to NaN without a word)."""
    for name, low in (("epochs", 1), ("batch_size", 1), ("size", MIN_SIZE)):
        if getattr(cfg, name) < low:
            raise SettingsError(f"{name} must be >= {low}, got {getattr(cfg, name)}")
    for name in ("step_epochs", "checkpoint_every", "workers"):
        if getattr(cfg, name) < 0:
            raise SettingsError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise SettingsError(f"max_steps must be >= 1, got {cfg.max_steps}")
    ranges = (
        ("lr", cfg.lr > 0, "> 0"),
        ("momentum", 0 <= cfg.momentum < 1, "in [0, 1)"),
        ("weight_decay", cfg.weight_decay >= 0, ">= 0"),
        ("gamma", 0 < cfg.gamma <= 1, "in (0, 1]"),
        ("init_std", cfg.init_std > 0, "> 0"),
        ("val_fraction", 0 <= cfg.val_fraction < 1, "in [0, 1)"),
    )
    for name, ok, wanted in ranges:
        value = getattr(cfg, name)
        if not (ok and math.isfinite(value)):  # NaN fails every comparison
            raise SettingsError(f"{name} must be {wanted}, got {value:g}")


def _check(cfg: TrainConfig) -> None:
    if cfg.schedule not in SCHEDULES:
        raise SettingsError(f"schedule must be one of {', '.join(SCHEDULES)}")
    _check_numbers(cfg)
    out = Path(cfg.out_dir)
    if out.exists() and not out.is_dir():
        raise SettingsError(f"{out} is a file; a training run writes a folder (-o)")
    if not cfg.resume and (out / CHECKPOINT).exists():  # it was overwritten without a word
        raise SettingsError(f"{out} already holds a run; --resume continues it, or give another -o")


def _data(cfg: TrainConfig, saved: dict | None):
    """Training and validation datasets (and normalisation, class names)."""
    src = open_source(cfg.data)
    if cfg.val_data:
        train_idx, val_src = list(range(len(src))), open_source(cfg.val_data)
        val_idx = list(range(len(val_src)))
        if val_src.classes != src.classes:
            raise SettingsError("validation data has other classes than the training data")
    else:
        train_idx, val_idx = split_indices(len(src), cfg.val_fraction, cfg.seed)
        val_src = src
    if saved is not None:
        mean, std, bad = saved["norm"]["mean"], saved["norm"]["std"], []
    else:
        mean, std, bad = compute_stats(src, train_idx, cfg.size, cfg.stats_images, cfg.seed)
    aug = Augment(cfg.crop, cfg.flip)
    train_ds = ImageDataset(src, train_idx, cfg.size, mean, std, aug, True, cfg.seed)
    val_ds = ImageDataset(val_src, val_idx, cfg.size, mean, std, aug, False, cfg.seed)
    return train_ds, val_ds, src.classes, (tuple(mean), tuple(std)), bad


def _batches(ds, world: ddp.World, cfg: TrainConfig, epoch: int) -> list[list[int]]:
    sampler = DistributedSampler(
        ds, num_replicas=world.size, rank=world.rank, shuffle=True, seed=cfg.seed
    )
    sampler.set_epoch(epoch)
    idx = list(sampler)
    return [idx[i : i + cfg.batch_size] for i in range(0, len(idx), cfg.batch_size)]


def _loader(ds, batches, cfg: TrainConfig) -> DataLoader:
    # Worker processes are spawned, not forked: an LMDB environment must not cross a fork (a
    # forked child inherits the parent's open environment and LMDB refuses to open it again).
    context = "spawn" if cfg.workers else None
    return DataLoader(
        ds,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=cfg.workers,
        multiprocessing_context=context,
    )


def _step(model, opt, x, y, amp: bool, device) -> tuple[float, int]:
    """One SGD step; ``(summed loss, correct)`` over the batch."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y, reduction="sum") / max(1, len(y))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item() * len(y), int((logits.argmax(1) == y).sum())


@torch.no_grad()
def _evaluate(model, ds, world: ddp.World, cfg: TrainConfig, amp: bool) -> tuple[float, float]:
    """(mean loss, accuracy) on the validation set, sharded over the processes."""
    model.eval()
    mine = list(range(world.rank, len(ds), world.size))
    batches = [mine[i : i + cfg.batch_size] for i in range(0, len(mine), cfg.batch_size)]
    loss = correct = count = 0.0
    for x, y, _ in _loader(ds, batches, cfg):
        if x is None:
            continue
        x, y = x.to(world.device), y.to(world.device)
        with torch.autocast(world.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
        count += len(y)
    model.train()
    loss, correct, count = ddp.all_sum(world, [loss, correct, count])
    return (loss / count, correct / count) if count else (float("nan"), float("nan"))


def _resume_state(cfg: TrainConfig) -> dict | None:
    path = Path(cfg.out_dir) / CHECKPOINT
    if not cfg.resume:
        return None
    saved = read_checkpoint(path)
    before = saved["config"]
    changed = [k for k in _SAME_ON_RESUME if not _same(k, before.get(k), getattr(cfg, k))]
    if changed:
        raise SettingsError(
            f"--resume with other {', '.join(changed)} than the checkpoint "
            f"({', '.join(f'{k}={before.get(k)!r}' for k in changed)})"
        )
    if saved.get("world_size", 1) != int(os.environ.get("WORLD_SIZE", "1")):
        raise SettingsError("--resume must use as many processes as the checkpointed run")
    return saved


def _same(key: str, saved: Any, now: Any) -> bool:
    """Whether a setting is the checkpoint's; the data are compared as the files they name
    (``./data.lmdb`` and ``$PWD/data.lmdb`` are one; paths are recorded absolute)."""
    if key in ("data", "val_data") and isinstance(saved, str) and isinstance(now, str):
        return os.path.realpath(saved) == os.path.realpath(now)
    return saved == now


class _Run:
    """State of one training run (one process)."""

    def __init__(self, cfg: TrainConfig, callback: Callable[[TrainProgress], None] | None):
        _check(cfg)
        self.cfg, self.callback = cfg, callback
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
        saved = _resume_state(cfg)
        self.world = ddp.setup(resolve_device(cfg.device))
        self.train_ds, self.val_ds, self.classes, self.norm, bad = _data(cfg, saved)
        dtype = resolve_dtype(cfg.precision, self.world.device)
        self.amp = dtype == torch.bfloat16  # fp32 unless bf16 is fast here (never assumed)
        net = build_model(
            cfg.arch, cfg.width, len(self.classes), cfg.init, cfg.init_std, cfg.seed
        ).to(self.world.device)
        self.net, self.model = net, ddp.wrap(net, self.world)
        self.opt = torch.optim.SGD(
            net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        self.epoch = self.step_in_epoch = self.global_step = 0
        self.sums = [0.0, 0.0, 0.0]  # loss, correct, images of the current epoch (all ranks)
        self.metrics: list[dict] = []
        self.skipped: list[str] = list(bad)
        self._images = 0  # trained by this process since start (images/s)
        if saved is not None:
            self._restore(saved)

    def _restore(self, saved: dict) -> None:
        self.net.load_state_dict(saved["model"])
        self.opt.load_state_dict(saved["optimizer"])
        self.epoch, self.step_in_epoch = saved["epoch"], saved["step_in_epoch"]
        self.global_step, self.metrics = saved["global_step"], list(saved["metrics"])
        self.sums = list(saved["sums"]) if self.world.main else [0.0, 0.0, 0.0]
        self.skipped = list(saved.get("skipped", []))

    def state(self) -> dict:
        from ..encoder.weights import WeightSpec, spec_to_dict

        mean, std = self.norm
        return {
            "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "sums": self.sums,
            "metrics": self.metrics,
            "skipped": self.skipped[:20],
            "config": asdict(self.cfg),
            "world_size": self.world.size,
            "classes": self.classes,
            "arch": {
                "blocks": list(self.net.arch.blocks),
                "channels": list(self.net.arch.channels),
            },
            "norm": {"mean": list(mean), "std": list(std)},
            "spec": spec_to_dict(WeightSpec(False, 1.0, tuple(mean), tuple(std))),
        }

    def checkpoint(self) -> None:
        """Save (rank 0 only), with the epoch's running sums gathered from every rank."""
        sums = ddp.all_sum(self.world, self.sums)
        if self.world.main:
            state = self.state()
            state["sums"] = sums
            write_checkpoint(Path(self.cfg.out_dir) / CHECKPOINT, state)

    def _report(self, phase: str, step: int, steps: int, t0: float, done0: int, row=None) -> None:
        if self.callback is None or not self.world.main:
            return
        elapsed = max(time.perf_counter() - t0, 1e-9)
        done = self.global_step - done0
        total = self.cfg.epochs * steps
        if self.cfg.max_steps is not None:
            total = min(total, self.cfg.max_steps)
        per_step = elapsed / max(1, done)
        self.callback(
            TrainProgress(
                phase, self.epoch, self.cfg.epochs, step, steps, *_running_means(self.sums, row),
                self._images * self.world.size / elapsed,
                max(0, total - self.global_step) * per_step, row,
            )
        )  # fmt: skip

    def _out_of_steps(self) -> bool:
        return self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps

    def run_epoch(self, t0: float, done0: int) -> bool:
        """Train the current epoch from ``step_in_epoch``; False if stopped by ``max_steps``."""
        cfg, dev = self.cfg, self.world.device
        batches = _batches(self.train_ds, self.world, cfg, self.epoch)
        self.train_ds.set_epoch(self.epoch)
        start, epoch_t0 = self.step_in_epoch, time.perf_counter()
        for k, (x, y, bad) in enumerate(_loader(self.train_ds, batches[start:], cfg), start):
            for g in self.opt.param_groups:
                g["lr"] = lr_at(cfg, self.epoch, k, len(batches))
            self.skipped += [n for n in bad if n not in self.skipped]  # each image once
            if x is None:  # every image unreadable: a zero step keeps the processes in step
                x, y = torch.zeros(0, 3, cfg.size, cfg.size), torch.zeros(0, dtype=torch.long)
            loss, correct = _step(self.model, self.opt, x.to(dev), y.to(dev), self.amp, dev)
            self.sums = [self.sums[0] + loss, self.sums[1] + correct, self.sums[2] + len(y)]
            self._images += len(y)
            self.step_in_epoch, self.global_step = k + 1, self.global_step + 1
            self._report("step", k + 1, len(batches), t0, done0)
            if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0:
                self.checkpoint()
            if self._out_of_steps() and k + 1 < len(batches):
                self.checkpoint()
                return False
        self._end_epoch(time.perf_counter() - epoch_t0, len(batches), t0, done0)
        return True

    def _end_epoch(self, seconds: float, steps: int, t0: float, done0: int) -> None:
        loss, correct, seen = ddp.all_sum(self.world, self.sums)
        val_loss, val_acc = _evaluate(self.model, self.val_ds, self.world, self.cfg, self.amp)
        row = _finite(
            {
                "epoch": self.epoch + 1,
                "train_loss": loss / seen if seen else float("nan"),
                "train_accuracy": correct / seen if seen else float("nan"),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "lr": self.opt.param_groups[0]["lr"],
                "images_per_s": seen / seconds if seconds > 0 else float("nan"),
                "seconds": seconds,
                "skipped": len(self.skipped),
                "skipped_names": self.skipped[:5],
            }
        )
        self.metrics.append(row)
        self.epoch, self.step_in_epoch, self.sums = self.epoch + 1, 0, [0.0, 0.0, 0.0]
        self.checkpoint()
        if self.world.main:
            write_metrics(self.cfg.out_dir, self.metrics)
        self._report("epoch", steps, steps, t0, done0, row)


def train(cfg: TrainConfig, callback: Callable[[TrainProgress], None] | None = None) -> TrainResult:
    """Train a VGG classifier on ``cfg.data``; checkpoints and metrics go to ``cfg.out_dir``.

    Launched by ``torchrun``, every process calls this; they train one model together.

    Returns:
        The metrics so far, the checkpoint path, the architecture, and whether all epochs ran
        (False when ``max_steps`` stopped the run; ``resume`` continues it).
    """
    absolute = {k: os.path.abspath(v) for k in ("data", "val_data") if (v := getattr(cfg, k))}
    run = _Run(replace(cfg, **absolute), callback)
    ended = False
    try:
        t0, done0 = time.perf_counter(), run.global_step
        finished = True
        with keep_freed_memory(run.world.device.type):  # as a style run does (allocator.py)
            while run.epoch < cfg.epochs:
                if run._out_of_steps() or not run.run_epoch(t0, done0):
                    finished = run.epoch >= cfg.epochs
                    break
        ended = True
        return TrainResult(
            run.metrics, Path(cfg.out_dir) / CHECKPOINT, run.net.arch, finished, run.skipped[:5]
        )
    finally:
        ddp.teardown(run.world, ended)
