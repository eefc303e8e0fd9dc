"""Tests for impasto.image.metadata: text metadata embedded by save_image and read back."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from impasto.errors import ImageError
from impasto.image import read_metadata, save_image

_META = {"style": "great_wave", "content_weight": "1.0", "note": 'café ☕ / "quotes"'}


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp"])
def test_metadata_round_trip(tmp_path, ext):
    out = tmp_path / f"m{ext}"
    save_image(torch.rand(1, 3, 6, 6), out, metadata=_META)
    assert read_metadata(out) == _META


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_metadata_round_trip_16bit(tmp_path, ext):
    out = tmp_path / f"m{ext}"
    save_image(torch.rand(1, 3, 6, 6), out, bits=16, metadata=_META)
    assert read_metadata(out) == _META


def test_png_metadata_is_one_itxt_chunk_per_key(tmp_path):
    save_image(torch.rand(1, 3, 4, 4), tmp_path / "m.png", metadata=_META)
    data = (tmp_path / "m.png").read_bytes()
    assert data.count(b"iTXt") == len(_META)


def test_metadata_order_does_not_change_json_descriptions(tmp_path):
    rgb = torch.rand(1, 3, 4, 4)
    save_image(rgb, tmp_path / "a.tif", metadata=dict(sorted(_META.items())))
    save_image(rgb, tmp_path / "b.tif", metadata=dict(sorted(_META.items(), reverse=True)))
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()


def test_foreign_description_is_returned_as_text(tmp_path):
    tifffile.imwrite(tmp_path / "d.tif", np.zeros((2, 2), np.uint8), description="a scan")
    assert read_metadata(tmp_path / "d.tif") == {"ImageDescription": "a scan"}


def test_read_metadata_without_metadata_and_errors(tmp_path):
    Image.new("RGB", (3, 3)).save(tmp_path / "plain.jpg")
    assert read_metadata(tmp_path / "plain.jpg") == {}
    save_image(torch.rand(1, 3, 2, 2), tmp_path / "plain.png")
    assert read_metadata(tmp_path / "plain.png") == {}
    with pytest.raises(ImageError):
        read_metadata(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"junk" * 10)
    with pytest.raises(ImageError) as exc:
        read_metadata(tmp_path / "junk.png")
    assert "junk.png" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("metadata", "error"),
    [({"": "x"}, ValueError), ({" k": "x"}, ValueError), ({"k" * 80: "x"}, ValueError),
     ({"ключ": "x"}, ValueError), ({"k": 1}, TypeError)],
)  # fmt: skip
def test_bad_metadata_keys_rejected_before_writing(tmp_path, metadata, error):
    with pytest.raises(error):
        save_image(torch.rand(1, 3, 2, 2), tmp_path / "a.png", metadata=metadata)
    assert list(tmp_path.iterdir()) == []
