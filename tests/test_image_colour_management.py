"""Tests for impasto.image.colour_management: ICC profiles -> sRGB, and the output profile."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from impasto.image import load_image
from impasto.image.colour_management import srgb_profile_bytes
from tests._image_helpers import as_hwc, bgr_profile, gradient16, rgb_array, srgb_bytes, write_png16


def test_bgr_profile_is_converted_to_srgb(tmp_path):
    # Under the BGR profile the first stored channel means blue: converting to sRGB must swap
    # the channels back, for any pixel, within LittleCMS's 8-bit rounding.
    arr = rgb_array(16, 16, seed=11)
    Image.fromarray(arr).save(tmp_path / "bgr.png", icc_profile=bgr_profile())
    li = load_image(tmp_path / "bgr.png")
    np.testing.assert_allclose(as_hwc(li.rgb), arr[..., ::-1] / 255.0, atol=1 / 255 + 1e-6)


def test_bgr_profile_on_16bit_png_keeps_precision(tmp_path):
    arr = gradient16()
    write_png16(tmp_path / "bgr16.png", arr, icc=bgr_profile())
    li = load_image(tmp_path / "bgr16.png")
    hwc = as_hwc(li.rgb)
    # the lookup table's nodes are LittleCMS's 8-bit results, exact to 1 level
    np.testing.assert_allclose(hwc, arr[..., ::-1] / 65535.0, atol=1 / 255 + 1e-6)
    assert len(np.unique(hwc[..., 2])) > 256  # no 8-bit banding


def test_srgb_tagged_loads_identically(tmp_path):
    arr = rgb_array(10, 6, seed=5)
    Image.fromarray(arr).save(tmp_path / "plain.png")
    Image.fromarray(arr).save(tmp_path / "tagged.png", icc_profile=srgb_bytes())
    a, b = load_image(tmp_path / "plain.png"), load_image(tmp_path / "tagged.png")
    assert a.rgb.equal(b.rgb)


def test_garbage_icc_profile_warns_and_loads(tmp_path):
    arr = rgb_array(4, 4)
    Image.fromarray(arr).save(tmp_path / "bad.png", icc_profile=b"not a profile at all" * 10)
    with pytest.warns(UserWarning, match="ICC"):
        li = load_image(tmp_path / "bad.png")
    np.testing.assert_allclose(as_hwc(li.rgb) * 255, arr, atol=1e-4)


def test_output_profile_is_srgb_with_a_fixed_date():
    data = srgb_profile_bytes()
    profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    # ICC header bytes 24-35: creation date; LittleCMS would write the current time there
    assert struct.unpack(">6H", data[24:36]) == (2000, 1, 1, 0, 0, 0)
