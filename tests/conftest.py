import pytest
import torch
from PIL import Image

from impasto import examples


@pytest.fixture(scope="session")
def content_path():
    return examples.path("chelsea")


@pytest.fixture(scope="session")
def style_path():
    return examples.path("starry_night")


@pytest.fixture
def tiny_rgb(tmp_path):
    """A 40x30 RGB gradient PNG on disk."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 30), torch.linspace(0, 1, 40), indexing="ij")
    arr = (torch.stack([x, y, 1 - x], -1) * 255).round().to(torch.uint8).numpy()
    path = tmp_path / "tiny.png"
    Image.fromarray(arr).save(path)
    return path
