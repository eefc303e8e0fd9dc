import signal

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


@pytest.fixture
def ctrl_c():
    """Ctrl-C reaches Python as from a terminal, also where pytest itself runs with SIGINT
    ignored (a background job of a non-interactive shell: ``pytest &`` in a script). Python's
    handler in this process; a child started now gets the default disposition (exec resets a
    handled signal, but keeps an ignored one ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
