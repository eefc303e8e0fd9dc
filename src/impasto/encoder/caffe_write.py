"""Writer of Caffe model files (``.caffemodel``): the inverse of :mod:`impasto.encoder.caffe`.

Used by ``impasto train export`` (a trained network's convolutions as a protobuf model file, the
format the method's network was distributed in) and by the tests, which build synthetic models
in both layouts. Writes ``name``, a data layer carrying the input normalisation as a
``transform_param``, each convolution with its ReLU, a pooling layer after each block, then any
extra layers (e.g. fully connected ones), in the new (``layer``) or V1 (``layers``) layout, with
packed or unpacked floats and ``shape`` or legacy num/channels/height/width dimensions.
Large arrays are written from memoryviews, never copied into one buffer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from .caffe import _FIELDS, V1_TYPES

__all__ = ["write_caffemodel"]

_V1_ENUM = {v: k for k, v in V1_TYPES.items()}
Pieces = list  # of bytes / byte memoryviews


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _size(pieces: Pieces) -> int:
    return sum(len(p) for p in pieces)


def _message(num: int, pieces: Pieces) -> Pieces:
    return [_varint(num << 3 | 2), _varint(_size(pieces)), *pieces]


def _string(num: int, text: str) -> Pieces:
    return _message(num, [text.encode()])


def _floats(num: int, values: np.ndarray, packed: bool) -> Pieces:
    arr = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    if packed:
        return _message(num, [memoryview(arr).cast("B")])
    rec = np.empty(arr.size, dtype=[("k", "u1"), ("v", "<f4")])
    rec["k"], rec["v"] = num << 3 | 5, arr
    return [rec.tobytes()]


def _blob(arr: np.ndarray, packed: bool, legacy: bool) -> Pieces:
    pieces: Pieces = []
    if legacy:
        dims = (1,) * (4 - arr.ndim) + arr.shape
        for num, d in zip((1, 2, 3, 4), dims):
            pieces += [_varint(num << 3), _varint(d)]
    else:
        dims = b"".join(_varint(d) for d in arr.shape)
        pieces += _message(7, _message(1, [dims]))
    return pieces + _floats(5, arr, packed)


def _layer(
    layout: str, name: str, kind: str, blobs: Sequence[np.ndarray], packed: bool, legacy: bool,
    transform: Pieces | None = None,
) -> Pieces:  # fmt: skip
    f_name, f_type, f_blobs, f_tp = _FIELDS[layout]
    pieces = _string(f_name, name)
    if layout == "layer":
        pieces += _string(f_type, kind)
    else:
        pieces += [_varint(f_type << 3), _varint(_V1_ENUM[kind])]
    for arr in blobs:
        pieces += _message(f_blobs, _blob(arr, packed, legacy))
    if transform is not None:
        pieces += _message(f_tp, transform)
    return pieces


def _transform(mean: Sequence[float] | None, scale: float | None) -> Pieces:
    pieces: Pieces = []
    if scale is not None:
        pieces += [_varint(1 << 3 | 5), np.float32(scale).astype("<f4").tobytes()]
    for m in mean or ():
        pieces += [_varint(5 << 3 | 5), np.float32(m).astype("<f4").tobytes()]
    return pieces


def _net(
    convs: Mapping[str, tuple[np.ndarray, np.ndarray]], layout: str, packed: bool, legacy: bool,
    name: str, mean: Sequence[float] | None, scale: float | None,
    extra: Sequence[tuple[str, str, Sequence[np.ndarray]]],
) -> Pieces:  # fmt: skip
    field = 100 if layout == "layer" else 2
    pieces = _string(1, name) if name else []
    if mean is not None or scale is not None:
        kind = "Input" if layout == "layer" else "Data"
        data = _layer(layout, "data", kind, (), packed, legacy, _transform(mean, scale))
        pieces += _message(field, data)
    names = list(convs)
    for i, conv in enumerate(names):
        w, b = convs[conv]
        pieces += _message(field, _layer(layout, conv, "Convolution", (w, b), packed, legacy))
        pieces += _message(field, _layer(layout, "relu" + conv[4:], "ReLU", (), packed, legacy))
        if i + 1 == len(names) or names[i + 1][4] != conv[4]:
            pool = f"pool{conv[4]}"
            pieces += _message(field, _layer(layout, pool, "Pooling", (), packed, legacy))
    for lname, kind, blobs in extra:
        pieces += _message(field, _layer(layout, lname, kind, blobs, packed, legacy))
    return pieces


def write_caffemodel(
    path: str | os.PathLike,
    convs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    layout: str = "layer",
    packed: bool = True,
    legacy_shape: bool = False,
    name: str = "",
    mean: Sequence[float] | None = None,
    scale: float | None = None,
    extra: Sequence[tuple[str, str, Sequence[np.ndarray]]] = (),
) -> None:
    """Write a Caffe model file atomically.

    Args:
        path: output file.
        convs: ``{"conv1_1": (weight OIHW, bias), ...}`` in forward order.
        layout: ``"layer"`` (current Caffe, string types) or ``"layers"`` (V1, enum types).
        packed: packed float arrays (Caffe's own output) or one key per float.
        legacy_shape: num/channels/height/width instead of ``shape``.
        name: the net's name.
        mean: per-channel ``transform_param.mean_value`` (input channel order, 0-255 units).
        scale: ``transform_param.scale``.
        extra: further ``(name, type, blobs)`` layers after the convolutions.
    """
    if layout not in _FIELDS:
        raise ValueError(f"layout must be 'layer' or 'layers', got {layout!r}")
    pieces = _net(convs, layout, packed, legacy_shape, name, mean, scale, extra)
    out = Path(path)
    with atomic_file(out) as f:
        for p in pieces:
            f.write(p)
