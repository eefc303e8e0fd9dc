"""Reader of Caffe's binary model files (``.caffemodel``), written against ``caffe.proto`` with
numpy only: no Caffe, no protobuf compiler.

Protocol buffers' wire format is a sequence of fields, each a varint key ``field << 3 | wire``
followed by a varint (wire 0), 8 bytes (1), a varint length and that many bytes (2: strings,
sub-messages, packed arrays) or 4 bytes (5). The parts of ``caffe.proto`` read here::

    NetParameter      name = 1; layers = 2 (V1LayerParameter); layer = 100 (LayerParameter)
    LayerParameter    name = 1; type = 2 (string); blobs = 7; transform_param = 100
    V1LayerParameter  name = 4; type = 5 (enum: 4 CONVOLUTION ...); blobs = 6; transform_param = 36
    BlobProto         num, channels, height, width = 1-4 (legacy shape); data = 5 (float, packed
                      or not); double_data = 8; shape = 7 (BlobShape: dim = 1, int64)
    TransformationParameter  scale = 1; mean_value = 5

The file is memory-mapped. Layers other than convolutions (the fully connected ones are 470 MB
of VGG19's 548 MB) are skipped by their length without being read; convolution weights are
copied out as float32 arrays.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from ..layers import CONV_NAME

__all__ = ["CaffeModel", "read_caffemodel", "looks_like_protobuf"]

# V1LayerParameter.LayerType values (caffe.proto) -> the new string types.
V1_TYPES = {
    1: "Accuracy", 3: "Concat", 4: "Convolution", 5: "Data", 6: "Dropout", 8: "Flatten",
    12: "ImageData", 14: "InnerProduct", 15: "LRN", 17: "Pooling", 18: "ReLU", 20: "Softmax",
    21: "SoftmaxWithLoss", 29: "MemoryData", 32: "DummyData",
}  # fmt: skip
_FIELDS = {  # layout -> (name, type, blobs, transform_param) field numbers
    "layer": (1, 2, 7, 100),
    "layers": (4, 5, 6, 36),
}


class _Bad(Exception):
    """Internal: malformed or truncated protobuf (turned into a WeightsError with the path)."""


@dataclass
class CaffeModel:
    """What the encoder needs from a caffemodel.

    Attributes:
        name: the net's name (``VGG_ILSVRC_19_layers`` for the original).
        layout: ``"layer"`` (current Caffe) or ``"layers"`` (V1, enum types).
        convs: ``{"conv1_1": (weight OIHW float32, bias float32), ...}`` in file order.
        mean: per-channel mean from a ``transform_param`` (BGR, 0-255 units), if the file has one.
        scale: ``transform_param.scale`` (multiplies after mean subtraction), if any.
    """

    name: str
    layout: str
    convs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    mean: tuple[float, ...] | None = None
    scale: float | None = None


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise _Bad(f"truncated: a number at byte {pos} runs past the end")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _Bad(f"not protobuf: overlong number at byte {pos}")


def _field(buf, pos: int, end: int) -> tuple[int, int, object, int]:
    """One field at ``pos``: ``(number, wire, value, next position)``; value is an int (wire 0)
    or the ``(start, end)`` span of the payload (wires 1, 2 and 5)."""
    key, pos = _varint(buf, pos, end)
    num, wire = key >> 3, key & 7
    if num == 0:
        raise _Bad(f"not protobuf: field number 0 at byte {pos}")
    if wire == 0:
        value, pos = _varint(buf, pos, end)
        return num, wire, value, pos
    if wire == 2:
        length, pos = _varint(buf, pos, end)
    elif wire in (1, 5):
        length = 8 if wire == 1 else 4
    else:
        raise _Bad(f"not protobuf: wire type {wire} at byte {pos}")
    if pos + length > end:
        raise _Bad(f"truncated: a field of {length} bytes at byte {pos} runs past the end ({end})")
    return num, wire, (pos, pos + length), pos + length


def _fields(buf, pos: int, end: int):
    """Yield ``(number, wire, value)`` for every field in ``buf[pos:end]``."""
    while pos < end:
        num, wire, value, pos = _field(buf, pos, end)
        yield num, wire, value


def _float_run(buf, pos: int, end: int) -> tuple[np.ndarray, int]:
    """Unpacked ``repeated float data = 5``: consecutive 5-byte entries (key 0x2d + float)."""
    n = (end - pos) // 5
    rec = np.frombuffer(buf, dtype=[("k", "u1"), ("v", "<f4")], count=n, offset=pos)
    other = np.flatnonzero(rec["k"] != 0x2D)
    count = int(other[0]) if other.size else n
    if count == 0:
        raise _Bad(f"truncated: a float at byte {pos} runs past the end ({end})")
    return rec["v"][:count].astype(np.float32), pos + 5 * count


def _int_list(buf, wire: int, value) -> list[int]:
    if wire == 0:
        return [value]
    out, pos = [], value[0]
    while pos < value[1]:
        v, pos = _varint(buf, pos, value[1])
        out.append(v)
    return out


def _blob(buf, start: int, end: int) -> np.ndarray:
    """Decode one BlobProto into a float32 array of its shape."""
    parts: list[np.ndarray] = []
    legacy, dims = {}, None
    pos = start
    while pos < end:
        if buf[pos] == 0x2D:  # data = 5, unpacked: a run of key + float entries
            arr, pos = _float_run(buf, pos, end)
            parts.append(arr)
            continue
        num, wire, value, pos = _field(buf, pos, end)
        if num == 5 and wire == 2:
            parts.append(np.frombuffer(buf, "<f4", (value[1] - value[0]) // 4, value[0]).copy())
        elif num == 8 and wire == 2:
            d = np.frombuffer(buf, "<f8", (value[1] - value[0]) // 8, value[0])
            parts.append(d.astype(np.float32))
        elif num == 7 and wire == 2:
            dims = [
                v for f, w, val in _fields(buf, *value) if f == 1 for v in _int_list(buf, w, val)
            ]
        elif num in (1, 2, 3, 4) and wire == 0:
            legacy[num] = value
    if not parts:
        raise _Bad("wrong shape: a blob holds no float data")
    data = np.concatenate(parts) if len(parts) != 1 else parts[0]
    if dims is None:
        dims = [legacy.get(i, 0) for i in (1, 2, 3, 4)]
    shape = tuple(int(d) for d in dims)
    if int(np.prod(shape)) != data.size:
        need = int(np.prod(shape))
        raise _Bad(
            f"wrong shape: a blob holds {data.size} values but its shape {shape} needs {need}"
        )
    return data.reshape(shape)


def _transform(buf, span) -> tuple[float | None, tuple[float, ...] | None]:
    scale, mean = None, []
    for num, wire, value in _fields(buf, *span):
        if num == 1 and wire == 5:
            scale = float(np.frombuffer(buf, "<f4", 1, value[0])[0])
        elif num == 5 and wire == 5:
            mean.append(float(np.frombuffer(buf, "<f4", 1, value[0])[0]))
        elif num == 5 and wire == 2:
            mean += np.frombuffer(buf, "<f4", (value[1] - value[0]) // 4, value[0]).tolist()
    return scale, (tuple(mean) if mean else None)


def _layer(buf, span, layout: str) -> tuple[str, str, list, tuple | None]:
    """(name, type, blob spans, transform_param span) of one layer message."""
    f_name, f_type, f_blobs, f_tp = _FIELDS[layout]
    name, kind, blobs, tp = "", "", [], None
    for num, wire, value in _fields(buf, *span):
        if num == f_name and wire == 2:
            name = bytes(buf[value[0] : value[1]]).decode("utf-8", "replace")
        elif num == f_type and layout == "layer" and wire == 2:
            kind = bytes(buf[value[0] : value[1]]).decode("utf-8", "replace")
        elif num == f_type and layout == "layers" and wire == 0:
            kind = V1_TYPES.get(value, f"V1 type {value}")
        elif num == f_blobs and wire == 2:
            blobs.append(value)
        elif num == f_tp and wire == 2:
            tp = value
    return name, kind, blobs, tp


def _parse(buf, size: int) -> CaffeModel:
    name, spans = "", {"layer": [], "layers": []}
    for num, wire, value in _fields(buf, 0, size):
        if num == 1 and wire == 2:
            name = bytes(buf[value[0] : value[1]]).decode("utf-8", "replace")
        elif num == 100 and wire == 2:
            spans["layer"].append(value)
        elif num == 2 and wire == 2:
            spans["layers"].append(value)
    layout = "layer" if spans["layer"] else "layers"
    if not spans[layout]:
        raise _Bad("not a Caffe model: no layers (neither 'layer' nor 'layers' fields)")
    model = CaffeModel(name, layout)
    block, in_block = 1, 0  # convolutions not named convB_C are named from the pooling layers
    for span in spans[layout]:
        lname, kind, blobs, tp = _layer(buf, span, layout)
        if tp is not None:
            model.scale, model.mean = _transform(buf, tp)
        if kind == "Pooling" and in_block:
            block, in_block = block + 1, 0
        if kind != "Convolution":
            continue  # fully connected and other layers: skipped unread
        if len(blobs) != 2:
            raise _Bad(f"convolution {lname!r} has {len(blobs)} blobs, expected weight and bias")
        in_block += 1
        key = lname if CONV_NAME.match(lname) else f"conv{block}_{in_block}"
        w, b = (_blob(buf, *s) for s in blobs)
        model.convs[key] = (w, b.reshape(-1))
    return model


def looks_like_protobuf(path: Path) -> bool:
    """True when the file starts like a NetParameter (name, layers or layer field)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head[:1] in (b"\x0a", b"\x12") or head == b"\xa2\x06"


def read_caffemodel(path: str | os.PathLike) -> CaffeModel:
    """Read the convolution weights of a Caffe model file through ``mmap``.

    Raises:
        WeightsError: one line: unreadable, truncated, not protobuf, no convolution layers or a
            blob whose values do not fill its shape.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise WeightsError(f"{p}: empty file, not a Caffe model")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                model = _parse(mm, size)
    except OSError as e:
        raise WeightsError(f"{p}: cannot read weights file ({e.strerror})") from e
    except _Bad as e:
        raise WeightsError(f"{p}: {e}") from None
    if not model.convs:
        raise WeightsError(f"{p}: no convolution layers in this Caffe model")
    return model
