"""Checkpoints: atomic save/load of a run's state, exact continuation, input identities."""

import pickle
import random

import pytest
import torch
from PIL import Image

from impasto.checkpoint import (
    Autosave,
    Checkpoint,
    CheckpointError,
    check_inputs,
    identity,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from impasto.optimise import Descent

TARGET = torch.linspace(0, 1, 48).reshape(1, 3, 4, 4)


def quadratic(x):
    loss = ((x - TARGET) ** 2).sum()
    return loss, {"q": loss}


def _checkpoint(descent, **kw):
    base = dict(
        settings={"size": 64, "style_layers": ["relu1_1"], "seed": None},
        seed=7,
        level=1,
        iteration=descent.done,
        descent=descent.state_dict(),
        rng=rng_state(),
        inputs={"content": {"name": "a.png", "sha256": "00"}},
        extra={"history": [{"step": 1, "loss": 2.5}]},
    )
    return Checkpoint(**{**base, **kw})


def test_round_trip_continues_bit_for_bit(tmp_path):
    kw = dict(optimizer="lbfgs", lr=1.0, history_size=4)
    straight = Descent(torch.zeros(1, 3, 4, 4), quadratic, **kw)
    for _ in range(6):
        straight.step()

    first = Descent(torch.zeros(1, 3, 4, 4), quadratic, **kw)
    for _ in range(2):
        first.step()
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, _checkpoint(first))
    ckpt = load_checkpoint(path)
    assert (ckpt.level, ckpt.iteration, ckpt.seed) == (1, 2, 7)
    assert ckpt.settings == {"size": 64, "style_layers": ["relu1_1"], "seed": None}
    assert ckpt.extra == {"history": [{"step": 1, "loss": 2.5}]}
    resumed = Descent(torch.zeros(1, 3, 4, 4), quadratic, **kw)
    resumed.load_state_dict(ckpt.descent)
    for _ in range(4):
        resumed.step()
    assert torch.equal(resumed.x, straight.x)
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no temporary left


def test_rng_state_restores_the_generators():
    state = rng_state()
    a = (random.random(), torch.rand(3))
    restore_rng(state)
    b = (random.random(), torch.rand(3))
    assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_rng_state_survives_a_file(tmp_path):
    d = Descent(torch.zeros(1, 3, 4, 4), quadratic, optimizer="adam", lr=0.1, history_size=1)
    save_checkpoint(tmp_path / "c", _checkpoint(d))  # takes rng_state() now
    expected = (random.random(), torch.rand(2))
    random.random(), torch.rand(5)  # the run goes on
    restore_rng(load_checkpoint(tmp_path / "c").rng)
    got = (random.random(), torch.rand(2))
    assert got[0] == expected[0] and torch.equal(got[1], expected[1])


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path):
    d = Descent(torch.zeros(1, 3, 4, 4), quadratic, optimizer="adam", lr=0.1, history_size=1)
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, _checkpoint(d, level=0))
    bad = _checkpoint(d, level=3, extra={"not picklable": lambda: 0})
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_checkpoint(path, bad)
    assert load_checkpoint(path).level == 0
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]


def test_unreadable_or_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not an impasto checkpoint"):
        load_checkpoint(other)
    d = Descent(torch.zeros(1, 3, 4, 4), quadratic, optimizer="adam", lr=0.1, history_size=1)
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, _checkpoint(d))
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="directory"):
        save_checkpoint(tmp_path / "nowhere" / "x.ckpt", _checkpoint(d))


def test_identities_and_the_input_check(tmp_path):
    a = tmp_path / "a.png"
    Image.new("RGB", (4, 4), "red").save(a)
    same = identity(a)
    assert same == identity(str(a)) and same["name"] == "a.png"
    assert identity(torch.ones(2, 2))["sha256"] != identity(torch.zeros(2, 2))["sha256"]
    assert (
        identity(Image.new("RGB", (2, 2)))["sha256"] == identity(Image.new("RGB", (2, 2)))["sha256"]
    )
    check_inputs({"content": same}, {"content": identity(a)})
    Image.new("RGB", (4, 4), "blue").save(a)
    with pytest.raises(CheckpointError, match=r"^the photo \(a.png\) has changed since the"):
        check_inputs({"content": same}, {"content": identity(a)})  # not 'differs ... (a.png)'
    b = tmp_path / "b.png"
    Image.new("RGB", (4, 4), "green").save(b)
    with pytest.raises(CheckpointError, match=r"^the photo \(b.png\) differs from .* \(a.png\)"):
        check_inputs({"content": same}, {"content": identity(b)})
    with pytest.raises(CheckpointError, match=r"had painting 1 \(a.png\), which is missing now"):
        check_inputs({"content": same, "style0": same}, {"content": same})
    with pytest.raises(CheckpointError, match=r"^the photo \(a.png\) was not part of"):
        check_inputs({}, {"content": same})
    with pytest.raises(CheckpointError, match=r"^region 2's painting \(a.png\) has changed"):
        check_inputs({"region1.style": same}, {"region1.style": identity(a)})
    with pytest.raises(CheckpointError, match="cannot read"):
        identity(tmp_path / "missing.png")


def test_autosave_is_due_every_n_seconds(tmp_path):
    now = [100.0]
    d = Descent(torch.zeros(1, 3, 4, 4), quadratic, optimizer="adam", lr=0.1, history_size=1)
    auto = Autosave(tmp_path / "run.ckpt", every=60, clock=lambda: now[0])
    assert not auto.due()
    now[0] = 159.9
    assert not auto.due()
    now[0] = 160.0
    assert auto.due()
    auto.save(lambda: _checkpoint(d))
    assert not auto.due() and auto.saved == 1
    assert load_checkpoint(tmp_path / "run.ckpt").iteration == 0
    assert not Autosave(tmp_path / "x", every=0, clock=lambda: 1e9).due()
