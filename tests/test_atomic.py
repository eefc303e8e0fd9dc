"""impasto.atomic: every file impasto writes is whole or absent, with a new file's permissions."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from impasto.atomic import atomic_file, umask
from impasto.checkpoint import Checkpoint, save_checkpoint
from impasto.encoder.weights import save_weights
from tests._tiny_vgg import SPEC, tiny_state_dict


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_content_replaces_the_file_whole_or_not_at_all(tmp_path):
    target = tmp_path / "a.json"
    with atomic_file(target, "w") as fh:
        fh.write("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_file(target) as fh:
        fh.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "first"  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_files_get_a_new_files_permissions_not_mkstemps_0600(tmp_path):
    """Exported weights and checkpoints were 0600 while images followed the umask."""
    expected = 0o666 & ~umask()
    weights, ckpt = tmp_path / "mine.pth", tmp_path / "run.ckpt"
    save_weights(weights, tiny_state_dict(), SPEC)
    image = torch.zeros(1, 3, 4, 4)
    save_checkpoint(ckpt, Checkpoint({}, 0, 0, 0, {"x": image}, {}, {}))
    for path in (weights, ckpt):
        assert _mode(path) == expected, path
