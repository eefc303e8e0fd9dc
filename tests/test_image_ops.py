"""Tests for impasto.image.ops: tensor <-> PIL conversion, fit_long_side and resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from impasto.image import crop_to_aspect, fit_long_side, resize, to_pil, to_tensor
from tests._image_helpers import rgb_array


def test_to_tensor_and_to_pil_round_trip():
    arr = rgb_array(9, 7, seed=3)
    im = Image.fromarray(arr)
    t = to_tensor(im)
    assert t.shape == (1, 3, 7, 9) and t.dtype == torch.float32
    np.testing.assert_array_equal(np.asarray(to_pil(t)), arr)
    g = to_tensor(im.convert("L"))  # grayscale input: three equal channels
    assert torch.equal(g[0, 0], g[0, 2])
    rgba = to_pil(t, torch.full((1, 1, 7, 9), 0.5))
    assert rgba.mode == "RGBA" and np.asarray(rgba)[0, 0, 3] == 128


def test_to_tensor_keeps_16bit_grayscale():
    g = np.linspace(0, 65535, 600).round().astype(np.uint16).reshape(20, 30)
    t = to_tensor(Image.fromarray(g))
    assert len(torch.unique(t[0, 0])) == 600


def test_to_pil_rounds_instead_of_truncating():
    t = torch.tensor([254.6 / 255, 0.4 / 255, 0.6 / 255]).reshape(1, 3, 1, 1)
    assert np.asarray(to_pil(t))[0, 0].tolist() == [255, 0, 1]
    over = torch.tensor([1.7, -0.3, 0.5]).reshape(1, 3, 1, 1)
    assert np.asarray(to_pil(over))[0, 0].tolist() == [255, 0, 128]


def test_to_pil_rejects_bad_shapes():
    with pytest.raises(ValueError, match="batch"):
        to_pil(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="alpha size"):
        to_pil(torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 5))
    with pytest.raises(TypeError):
        to_pil(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))


@given(
    w=st.integers(1, 20_000),
    h=st.integers(1, 20_000),
    long_side=st.integers(1, 8_000),
)
def test_fit_long_side_properties(w, h, long_side):
    nw, nh = fit_long_side((w, h), long_side)
    assert max(nw, nh) == long_side
    assert nw >= 1 and nh >= 1
    # the short side is the nearest integer to the exact value (or 1)
    if w >= h:
        exact = h * long_side / w
        assert nw == long_side
        assert abs(nh - exact) <= 0.5 or (nh == 1 and exact < 1)
    else:
        exact = w * long_side / h
        assert nh == long_side
        assert abs(nw - exact) <= 0.5 or (nw == 1 and exact < 1)


def test_fit_long_side_examples_and_errors():
    assert fit_long_side((400, 300), 200) == (200, 150)
    assert fit_long_side((300, 400), 200) == (150, 200)
    assert fit_long_side((100_000, 1), 512) == (512, 1)
    assert fit_long_side((3, 2), 3) == (3, 2)
    with pytest.raises(ValueError):
        fit_long_side((0, 5), 10)
    with pytest.raises(ValueError):
        fit_long_side((5, 5), 0)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 4),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    nh=st.integers(1, 40),
    nw=st.integers(1, 40),
)
def test_resize_shapes_and_range(n, c, h, w, nh, nw):
    t = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(h * 41 + w))
    out = resize(t, (nw, nh))
    assert out.shape == (n, c, nh, nw)
    assert out.dtype == t.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_resize_noop_returns_same_tensor():
    t = torch.rand(1, 3, 7, 9)
    assert resize(t, (9, 7)) is t


def test_resize_clamps_overshoot():
    t = torch.zeros(1, 1, 8, 8)
    t[..., 4:] = 1.0  # a hard edge makes bicubic overshoot when upsampling
    out = resize(t, (32, 32))
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


@settings(max_examples=15, deadline=None)
@given(
    w=st.integers(8, 64),
    h=st.integers(8, 64),
    factor=st.floats(0.2, 0.9),
    seed=st.integers(0, 2**16),
)
def test_resize_shrinks_like_pillows_bicubic(w, h, factor, seed):
    # The same antialiased Keys filter; Pillow computes in 8-bit fixed point, hence 1 level.
    # Pixels stay within [64, 191] so that the filter's overshoot never reaches 0 or 255,
    # where Pillow clips between its horizontal and vertical passes and torch does not.
    arr = np.random.default_rng(seed).integers(64, 192, (h, w, 3), dtype=np.uint8)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    ours = np.asarray(to_pil(resize(to_tensor(Image.fromarray(arr)), size)), np.int16)
    pillow = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BICUBIC), np.int16)
    assert np.abs(ours - pillow).max() <= 1


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_resize_does_not_alias(factor):
    # a 1-pixel checkerboard shrunk by an integer factor is flat grey when low-pass filtered
    # first; point sampling it would give pure black or white
    n = 12 * factor
    checker = torch.from_numpy((np.indices((n, n)).sum(0) % 2).astype(np.float32))[None, None]
    out = resize(checker, (n // factor, n // factor))
    inner = out[..., 2:-2, 2:-2]  # away from the edges, where the filter is clipped
    assert float((inner - 0.5).abs().max()) < 1 / 255


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 300), st.integers(1, 300), st.integers(1, 300), st.integers(1, 300)
)  # fmt: skip
def test_crop_to_aspect_cuts_the_centre_to_the_target_aspect(tw, th, w, h):
    t = torch.arange(th * tw, dtype=torch.float32).reshape(1, 1, th, tw)
    out = crop_to_aspect(t, (w, h))
    oh, ow = out.shape[-2:]
    if out is t:  # a stretch by less than one pixel of (w, h), or nothing left to cut
        close = abs(tw * h / th - w) < 1 and abs(th * w / tw - h) < 1
        assert close or round(th * w / h) in (0, 1, tw) or round(tw * h / w) in (0, 1, th)
        return
    assert (ow == tw) != (oh == th)  # one side cut, never both
    if ow < tw:  # the width is the height's at the target aspect, within rounding
        assert abs(ow - oh * w / h) <= 0.5 or ow == 1
    else:
        assert abs(oh - ow * h / w) <= 0.5 or oh == 1
    top, left = (th - oh) // 2, (tw - ow) // 2  # the centre
    assert torch.equal(out, t[..., top : top + oh, left : left + ow])


def test_crop_to_aspect_examples():
    t = torch.zeros(1, 3, 30, 40)
    assert crop_to_aspect(t, (48, 32)).shape[-2:] == (27, 40)  # 4:3 -> 3:2: rows cut
    assert crop_to_aspect(t, (30, 30)).shape[-2:] == (30, 30)  # square: sides cut
    assert crop_to_aspect(t, (400, 300)) is t
    photo = torch.zeros(1, 3, 300, 451)  # a 451x300 photo at 256x170: the size's rounding
    assert crop_to_aspect(photo, fit_long_side((451, 300), 256)) is photo
    with pytest.raises(ValueError, match="positive"):
        crop_to_aspect(t, (0, 5))
