"""The Caffe protobuf reader against synthetic model files from the package's own writer."""

import numpy as np
import pytest
import torch

from impasto.encoder import load_encoder, load_state_dict
from impasto.encoder.arch import VGG_BLOCKS, arch_from_blocks
from impasto.encoder.caffe import read_caffemodel
from impasto.encoder.caffe_write import write_caffemodel
from impasto.encoder.weights import CAFFE_SPEC
from impasto.errors import WeightsError


def _convs(arch="vgg19", width=1 / 16, seed=0):
    rng = np.random.default_rng(seed)
    a = arch_from_blocks(VGG_BLOCKS[arch], width)
    out, in_ch = {}, 3
    for name, ch in zip(a.conv_names, a.channels):
        w = rng.standard_normal((ch, in_ch, 3, 3)).astype(np.float32) * 0.2
        out[name] = (w, rng.standard_normal(ch).astype(np.float32) * 0.1)
        in_ch = ch
    return out


FC = [("fc6", "InnerProduct", [np.ones((8, 6), np.float32), np.ones(8, np.float32)])]


@pytest.mark.parametrize("layout", ["layer", "layers"])
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("legacy", [True, False])
def test_reading_returns_exactly_what_was_written(tmp_path, layout, packed, legacy):
    convs = _convs("vgg11")
    path = tmp_path / "net.caffemodel"
    write_caffemodel(
        path, convs, layout=layout, packed=packed, legacy_shape=legacy, name="tiny",
        mean=(1.5, 2.5, 3.5), scale=0.5, extra=FC,
    )  # fmt: skip
    model = read_caffemodel(path)
    assert (model.name, model.layout) == ("tiny", layout)
    assert model.mean == (1.5, 2.5, 3.5) and model.scale == 0.5
    assert list(model.convs) == list(convs)
    for name, (w, b) in convs.items():
        np.testing.assert_array_equal(model.convs[name][0], w)
        np.testing.assert_array_equal(model.convs[name][1], b)


def test_fully_connected_blobs_are_skipped_unread(tmp_path):
    # A blob whose values do not fill its shape fails when decoded; in fc6 it is never decoded.
    bad_fc = [("fc6", "InnerProduct", [np.ones((4, 4), np.float32)])]
    path = tmp_path / "VGG_ILSVRC_19_layers.caffemodel"
    write_caffemodel(path, _convs(), layout="layers", legacy_shape=True, extra=bad_fc)
    data = bytearray(path.read_bytes())
    # Patch fc6's legacy "width" field (key 0x20) from 4 to 5: now 16 values for 20 positions.
    at = data.rindex(bytes([0x20, 4]))
    data[at + 1] = 5
    path.write_bytes(bytes(data))
    sd, spec = load_state_dict(path)
    assert spec == CAFFE_SPEC and len(sd) == 32


def test_detected_by_extension_content_or_forced(tmp_path):
    convs = _convs()
    for name in ("a.caffemodel", "no_extension", "weights.dat"):
        write_caffemodel(tmp_path / name, convs, name="VGG_ILSVRC_19_layers")
        sd, spec = load_state_dict(tmp_path / name)
        torch.testing.assert_close(sd["conv5_4.weight"], torch.from_numpy(convs["conv5_4"][0]))
        assert spec.bgr and spec.scale == 255.0
    sd, _ = load_state_dict(tmp_path / "weights.dat", "caffe-protobuf")
    assert len(sd) == 32


def test_features_equal_the_torch_conversion(tmp_path):
    """What the README asks a user with the real file to check: the caffemodel and
    its PyTorch conversion (features.{i}, format 'caffe') give equal features."""
    from impasto.encoder.weights import _TV_INDEX

    convs = _convs()
    write_caffemodel(tmp_path / "VGG_ILSVRC_19_layers.caffemodel", convs, layout="layers")
    feats = {}
    for name, i in _TV_INDEX.items():
        feats[f"features.{i}.weight"] = torch.from_numpy(convs[name][0])
        feats[f"features.{i}.bias"] = torch.from_numpy(convs[name][1])
    torch.save(feats, tmp_path / "vgg19-d01eb7cb.pth")
    x = torch.rand(1, 3, 32, 32)
    layers = ["relu1_1", "relu3_1", "relu4_2", "relu5_1"]
    a = load_encoder("avg", weights=tmp_path / "VGG_ILSVRC_19_layers.caffemodel")(x, layers)
    b = load_encoder("avg", weights=tmp_path / "vgg19-d01eb7cb.pth")(x, layers)
    for k in layers:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def _error(tmp_path, data: bytes, name="bad.caffemodel") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(WeightsError) as e:
        load_state_dict(path)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_bad_files_get_one_line_errors(tmp_path):
    good = tmp_path / "good.caffemodel"
    write_caffemodel(good, _convs(), extra=FC)
    data = good.read_bytes()
    assert "truncated" in _error(tmp_path, data[: len(data) // 2])
    assert "not protobuf" in _error(tmp_path, b"\xff\xff\xff\xff\x0f" * 20)
    assert "empty file" in _error(tmp_path, b"")
    write_caffemodel(tmp_path / "fc.caffemodel", {}, extra=FC)
    assert "no convolution layers" in _error(tmp_path, (tmp_path / "fc.caffemodel").read_bytes())


def test_wrong_shapes_are_named(tmp_path):
    convs = _convs()
    w, b = convs["conv2_1"]
    convs["conv2_1"] = (w[:, :2], b)  # in-channels no longer the previous layer's outputs
    write_caffemodel(tmp_path / "x.caffemodel", convs)
    with pytest.raises(WeightsError, match=r"conv2_1 has shape \(8, 2, 3, 3\), expected"):
        load_state_dict(tmp_path / "x.caffemodel")


def test_vgg16_file_given_as_vgg19_is_named(tmp_path):
    path = tmp_path / "VGG_ILSVRC_19_layers.caffemodel"
    write_caffemodel(path, _convs("vgg16"), layout="layers")
    with pytest.raises(WeightsError, match="named as VGG19 but holds VGG16's 13 convolutions"):
        load_state_dict(path)
    ok = tmp_path / "VGG_ILSVRC_16_layers.caffemodel"
    write_caffemodel(ok, _convs("vgg16"), layout="layers")
    enc = load_encoder("max", weights=ok)
    assert enc.arch.label == "VGG16" and "relu3_4" not in enc.names


def test_unnamed_convolutions_take_block_names_from_the_pooling_layers(tmp_path):
    convs = _convs("vgg11")
    layers = []
    for i, (name, wb) in enumerate(convs.items()):
        layers.append((f"layer{i}", "Convolution", list(wb)))
        nxt = list(convs)[i + 1] if i + 1 < len(convs) else None
        if nxt is None or nxt[4] != name[4]:
            layers.append((f"p{i}", "Pooling", []))
    path = tmp_path / "anon.caffemodel"
    write_caffemodel(path, {}, layout="layers", extra=layers)
    assert list(read_caffemodel(path).convs) == list(convs)
