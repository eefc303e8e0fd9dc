"""Stage 3 of a run: from the optimised image to a :class:`Result` (colour post-processing,
the photo's alpha, what the run used) and the metadata its files carry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from .image import resize, save_image, to_pil
from .plan import Plan
from .version import __version__

__all__ = ["Result", "finish", "METADATA_KEY"]

METADATA_KEY = "impasto"


@dataclass
class Result:
    """The outcome of a run.

    Attributes:
        image: ``(1, 3, H, W)`` float32 RGB in [0, 1], on the CPU.
        alpha: ``(1, 1, H, W)`` alpha restored from the content image, or None.
        settings: the settings used.
        seed: the random seed used.
        elapsed: wall time of the run in seconds (not written into files, so the same seed and
            settings give the same file bytes).
        inputs: names of the content and style images (and regions).
        history: per-iteration records (step, scale, elapsed, loss and components).
        memory: per scale, how it ran: ``size``, ``tile`` (None: whole image), ``halo``,
            ``optimizer`` and L-BFGS ``history`` (chosen from the memory budget; recorded in the
            metadata).
        notes: the run's log messages (:class:`impasto.progress.Note`).
    """

    image: torch.Tensor
    alpha: torch.Tensor | None
    settings: Any
    seed: int
    elapsed: float
    inputs: dict[str, Any] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    memory: list[dict] = field(default_factory=list)
    notes: list[Any] = field(default_factory=list)

    @property
    def metadata(self) -> dict[str, str]:
        """Text metadata embedded in saved files: settings, seed, inputs, version."""
        info = {
            "version": __version__,
            "seed": self.seed,
            "inputs": self.inputs,
            "settings": {**self.settings.resolved(), "seed": self.seed},
        }
        if self.memory:
            keys = ("size", "tile", "optimizer", "history")
            info["memory"] = [{k: m[k] for k in keys} for m in self.memory]
        return {
            METADATA_KEY: json.dumps(info, sort_keys=True),
            "Software": f"impasto {__version__}",
        }

    def to_pil(self) -> Image.Image:
        """8-bit PIL image (RGBA when the content had alpha)."""
        return to_pil(self.image, self.alpha)

    def save(
        self, path, *, bits: int = 8, quality: int | None = None, dpi: float | None = None
    ) -> None:
        """Write atomically, format by extension, with the settings in the metadata; ``bits``,
        ``quality`` (JPEG/WebP) and ``dpi`` (print resolution) as for
        :func:`~impasto.image.save_image`."""
        save_image(
            self.image, path, alpha=self.alpha, bits=bits, metadata=self.metadata,
            quality=quality, dpi=dpi,
        )  # fmt: skip


def describe_inputs(plan: Plan) -> dict[str, Any]:
    """The names of a run's inputs, as recorded in its metadata."""
    inputs: dict[str, Any] = {
        "content": plan.photo.name if plan.photo is not None else None,
        "styles": [
            {
                "name": st.image.name,
                "weight": st.input.weight,
                "scale": st.input.scale,
                **({"layers": list(st.input.layers)} if st.input.layers else {}),
            }
            for st in plan.styles
        ],
    }
    if plan.regions:
        inputs["regions"] = [
            {
                "mask": r.region.name,
                "style": r.style.image.name if r.style is not None else None,
                "weight": r.region.weight,
                "feather": r.region.feather,
            }
            for r in plan.regions
        ]
    return inputs


def finish(
    plan: Plan,
    image: torch.Tensor,
    elapsed: float,
    history: list[dict],
    memory: list[dict] | None = None,
    notes: list[Any] | None = None,
) -> Result:
    """The :class:`Result` of a run whose optimised image (optimised channels) is ``image``;
    ``memory`` and ``notes`` as kept by :class:`impasto.progress.Progress`."""
    photo = resize(plan.photo.rgb, plan.size) if plan.photo is not None else None
    out = plan.colors.finish(image.float().cpu(), photo)
    alpha = None
    if plan.photo is not None and plan.photo.alpha is not None:
        alpha = resize(plan.photo.alpha, plan.size)
    return Result(
        out.clamp(0, 1),
        alpha,
        plan.settings,
        plan.seed,
        elapsed,
        describe_inputs(plan),
        history,
        list(memory or []),
        list(notes or []),
    )
