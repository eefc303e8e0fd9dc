"""Work that several runs can share: decoded images, guides, encoders and per-scale targets.

Pass one :class:`RunCache` to several :meth:`impasto.api.Stylizer.run` calls (``impasto sweep``
and ``impasto batch`` do) and each piece is computed once:

* images and masks, keyed by path (absolute path, size and modification time) or, for PIL
  images and tensors, by identity (the cache keeps a reference);
* encoders, keyed by pooling, weights, device, dtype and the convolution algorithm
  (``cache.network_key``), rebuilt only when a deeper layer is needed;
* targets, in two independent parts: the photo's content features and the paintings' style
  Grams. Each part is keyed by exactly what it depends on, so the same painting's Grams are
  reused across photos (unless a colour mode makes them depend on the photo) and computed for
  the union of the layers asked for so far.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

from .encoder import load_encoder
from .image import LoadedImage, load_image
from .inputs import resolve_input
from .layers import LAYER_NAMES, deepest
from .objective import Targets
from .regions import load_guide
from .settings import Settings

__all__ = ["RunCache", "network_key"]

Compute = Callable[[tuple[str, ...]], Any]


def network_key(s: Settings, device: torch.device, dtype: torch.dtype, winograd: bool) -> tuple:
    """What the network, and so every feature it computes, depends on: the key of its encoder
    here, and part of the targets' keys (:func:`impasto.pyramid.scale_targets`)."""
    return (s.pooling, s.weights, s.weights_format, str(device), dtype, winograd)


class RunCache:
    """Shared work of several runs (see the module docstring).

    Args:
        content_layers: extra content layers to compute targets for (so later runs asking for
            them reuse the targets).
        style_layers: extra style layers, likewise.

    Attributes:
        stats: counters ``images_loaded``, ``encoders_built``, ``targets_computed``,
            ``targets_reused`` (each content or style part counts once).
    """

    def __init__(self, content_layers: Sequence[str] = (), style_layers: Sequence[str] = ()):
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.stats = dict.fromkeys(
            ("images_loaded", "encoders_built", "targets_computed", "targets_reused"), 0
        )
        self._images: dict[Hashable, LoadedImage] = {}
        self._guides: dict[Hashable, torch.Tensor] = {}
        self._encoders: dict[Hashable, Any] = {}
        self._parts: dict[Hashable, tuple[frozenset[str], Any]] = {}
        self._kept: dict[int, Any] = {}

    def key(self, source: Any) -> Hashable:
        """A hashable identity of an input (path or object)."""
        if source is None:
            return None
        if isinstance(source, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(source))
            try:
                st = os.stat(path)
            except OSError:
                return ("path", path)
            return ("path", path, st.st_size, st.st_mtime_ns)
        self._kept[id(source)] = source
        return ("object", id(source))

    def image(self, source: Any, max_pixels: int | None = None) -> LoadedImage:
        """:func:`impasto.image.load_image`, once per input (``example:NAME`` as on the command
        line)."""
        if isinstance(source, str):
            source = resolve_input(source)
        k = (self.key(source), max_pixels)  # the limit is checked as the file is opened
        if k not in self._images:
            self._images[k] = load_image(source, max_pixels=max_pixels)
            self.stats["images_loaded"] += 1
        return self._images[k]

    def guide(self, source: Any) -> torch.Tensor:
        """A region mask as a guide (:func:`impasto.regions.load_guide`), once per input."""
        k = self.key(source)
        if k not in self._guides:
            self._guides[k] = load_guide(source)
        return self._guides[k]

    def encoder(
        self,
        s: Settings,
        device: torch.device,
        dtype: torch.dtype,
        layers: Sequence[str],
        *,
        winograd: bool,
    ):
        """An encoder deep enough for ``layers`` (and this cache's extra layers)."""
        k = network_key(s, device, dtype, winograd)
        need = deepest([*layers, *self.content_layers, *self.style_layers])
        enc = self._encoders.get(k)
        if enc is None or LAYER_NAMES.index(enc.last) < LAYER_NAMES.index(need):
            enc = load_encoder(
                s.pooling,
                device=device,
                dtype=dtype,
                last=need,
                weights=s.weights,
                weights_format=s.weights_format,
                winograd=winograd,
            )
            self._encoders[k] = enc
            self.stats["encoders_built"] += 1
        return enc

    def forget(self, source: Any) -> None:
        """Drop a decoded input and every content target computed from it (a long batch calls
        this after each photo, so memory stays flat)."""
        if isinstance(source, str):
            source = resolve_input(source)
        k = self.key(source)
        for image_key in [ik for ik in self._images if ik[0] == k]:  # under any pixel limit
            del self._images[image_key]
        self._guides.pop(k, None)
        self._kept.pop(id(source), None)
        stale = [key for key in self._parts if key[0] == "content" and k in key[1][0]]
        for key in stale:
            del self._parts[key]

    def content_targets(self, key: Hashable, layers: Sequence[str], compute: Compute) -> Targets:
        """The content part of the targets for ``key`` (``compute(layers) -> Targets``)."""
        return self._part(("content", key), layers, self.content_layers, compute)

    def style_targets(self, key: Hashable, layers: Sequence[str], compute: Compute) -> Targets:
        """The style part of the targets for ``key`` (``compute(layers) -> Targets``)."""
        return self._part(("style", key), layers, self.style_layers, compute)

    def _part(self, key: Hashable, layers: Sequence[str], extra: Sequence[str], compute: Compute):
        if not layers:
            return Targets({}, {})
        known = self._parts.get(key)
        if known is not None and set(layers) <= known[0]:
            self.stats["targets_reused"] += 1
            return known[1]
        union = dict.fromkeys([*layers, *extra, *(known[0] if known else ())])
        value = compute(tuple(union))
        self._parts[key] = (frozenset(union), value)
        self.stats["targets_computed"] += 1
        return value
