"""What the web tests share: the tiny random-weight VGG19 the test servers run, and a client.

Import this module only after ``pytest.importorskip("fastapi")`` / ``("httpx")``. A test module
that imports ``tiny_network`` gets it as an autouse module fixture.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from impasto.web.app import WebConfig, create_app

BASE = "http://127.0.0.1"
WEIGHTS: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def tiny_network(tmp_path_factory):
    """Jobs run a tiny random-weight VGG19 (the server's --weights): milliseconds per step. One
    torch thread: on a shared 2-core machine two threads spin against each other."""
    import torch

    from impasto.encoder.weights import save_weights
    from tests._tiny_vgg import SPEC, tiny_state_dict

    path = tmp_path_factory.mktemp("weights") / "tiny-vgg19.pth"
    save_weights(path, tiny_state_dict(), SPEC)
    WEIGHTS["path"] = str(path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def client(data_dir: Path, **config):
    """A test client of a fresh app over ``data_dir`` serving the tiny network."""
    config.setdefault("weights", WEIGHTS["path"])
    with TestClient(create_app(WebConfig(data_dir=data_dir, **config)), base_url=BASE) as c:
        yield c
