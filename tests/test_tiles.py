"""Exact tiles: loss and gradient computed tile by tile equal the whole image's (issue 11)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from impasto.errors import SettingsError
from impasto.optimise import optimise
from impasto.tiles import (
    TiledObjective,
    alignment,
    receptive_radius,
    required_halo,
    tile_windows,
)
from tests._tiny_vgg import tiny_objective

# Tall enough for a tile whose crop lies strictly inside the image (halo 80 on both sides).
SIZE = (288, 288)
TILE = 96


def _untiled(objective, image):
    x = image.clone().requires_grad_(True)
    total, parts = objective(x)
    (grad,) = torch.autograd.grad(total, x)
    return total.detach(), {k: v.detach() for k, v in parts.items()}, grad


def _tiled(tiled, image):
    x = image.clone().requires_grad_(True)
    total, parts = tiled(x)
    return total, parts, x.grad


def _image(channels, dtype, seed=5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, channels, *SIZE, generator=g).to(dtype)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize(
    "dtype, pooling, propagation, channels, tol",
    [
        (torch.float64, "max", "inside", 3, 1e-10),
        (torch.float64, "avg", "area", 1, 1e-10),
        (torch.float32, "avg", "area", 3, 1e-5),
        (torch.float32, "max", "inside", 1, 1e-5),
    ],
)
def test_tiled_loss_and_gradient_equal_untiled(dtype, pooling, propagation, channels, tol):
    objective, _ = tiny_objective(SIZE, pooling=pooling, dtype=dtype, propagation=propagation)
    tiled = TiledObjective(objective, TILE)
    windows = tiled.windows(SIZE)
    assert len(windows) == 9
    # At least one tile's crop is cut on every side (a real halo, not the image border).
    assert any(
        w.origin[0] > 0 and w.origin[1] > 0 and w.bottom + 80 < SIZE[0] and w.right + 80 < SIZE[1]
        for w in windows
    )
    image = _image(channels, dtype)
    total_u, parts_u, grad_u = _untiled(objective, image)
    total_t, parts_t, grad_t = _tiled(tiled, image)
    assert set(parts_t) == set(parts_u) == {"content", "style", "tv"}
    for k in parts_u:
        assert _rel(parts_t[k], parts_u[k]) < tol, k
    assert _rel(total_t, total_u) < tol
    assert grad_t.shape == image.shape
    assert _rel(grad_t, grad_u) < tol


def test_a_halo_short_of_the_receptive_field_is_wrong():
    # The exactness above depends on the halo: 64 px does not cover relu5_1's reach of 70 px.
    objective, _ = tiny_objective(SIZE, dtype=torch.float64)
    tiled = TiledObjective(objective, TILE)
    image = _image(3, torch.float64)
    _, _, grad_u = _untiled(objective, image)
    tiled.halo = 64  # bypassing the constructor's check on purpose
    _, _, grad_t = _tiled(tiled, image)
    assert _rel(grad_t, grad_u) > 1e-6


def test_sizes_that_cannot_be_exact_are_rejected():
    objective, _ = tiny_objective((64, 64))
    with pytest.raises(SettingsError, match="multiples of 16"):
        TiledObjective(objective, 100)
    with pytest.raises(SettingsError, match="too small"):
        TiledObjective(objective, 64, halo=64)
    with pytest.raises(SettingsError, match="multiples of 16"):
        TiledObjective(objective, 64, halo=88)


def test_receptive_field_and_halo():
    assert receptive_radius("relu1_1") == 1
    assert receptive_radius("relu5_1") == 2 + 2 * 2 + 4 * 4 + 4 * 8 + 16  # 70
    assert required_halo(["relu1_1", "relu5_1"]) == 80
    assert required_halo(["relu4_2"]) == 40  # 38, rounded up to a multiple of 8
    assert alignment(["relu1_1", "relu4_2"]) == 8
    assert alignment([]) == 1
    # A shallower VGG (fewer convolutions per block) reaches less far.
    vgg11 = ["conv1_1", "relu1_1", "pool1", "conv2_1", "relu2_1", "pool2", "conv3_1", "relu3_1"]
    assert receptive_radius("relu3_1", vgg11) == 1 + 2 + 4


@given(
    h=st.integers(16, 700),
    w=st.integers(16, 700),
    tile=st.sampled_from([16, 32, 48, 64, 256]),
    halo=st.sampled_from([0, 16, 80]),
)
@settings(max_examples=30, deadline=None)
def test_tiles_partition_the_image_on_the_stride_grid(h, w, tile, halo):
    windows = tile_windows((h, w), tile, halo, 16)
    owned = torch.zeros(h, w, dtype=torch.int32)
    for win in windows:
        assert win.bottom - win.top <= tile and win.right - win.left <= tile
        assert win.top % 16 == 0 and win.left % 16 == 0
        assert win.origin == (max(0, win.top - halo), max(0, win.left - halo))
        owned[win.top : win.bottom, win.left : win.right] += 1
        # At the deepest layer, owned positions partition the layer's positions too.
    assert bool((owned == 1).all())
    rows16 = sorted({(win.top // 16, win.bottom // 16) for win in windows})
    assert rows16[0][0] == 0 and rows16[-1][1] == h // 16
    assert all(a[1] == b[0] for a, b in zip(rows16, rows16[1:]))


def test_an_image_within_one_tile_is_evaluated_whole():
    objective, _ = tiny_objective((48, 64))
    image = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    total_u, _, grad_u = _untiled(objective, image)
    total_t, _, grad_t = _tiled(TiledObjective(objective, 64), image)
    assert torch.equal(total_t, total_u) and torch.equal(grad_t, grad_u)


def test_tiled_evaluation_without_gradient_gives_the_value():
    objective, _ = tiny_objective(SIZE, dtype=torch.float64)
    image = _image(3, torch.float64)
    total_u, _, _ = _untiled(objective, image)
    total_t, _ = TiledObjective(objective, TILE)(image)
    assert _rel(total_t, total_u) < 1e-10


def test_optimise_takes_the_tiled_gradient():
    # The loop uses the gradient the tiled objective computes (its float32 image makes the two
    # differ by rounding, which L-BFGS amplifies over iterations: compare the first two).
    size = (96, 64)
    objective, _ = tiny_objective(size, dtype=torch.float64)
    start = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(2))
    seen, totals_u, totals_t = [], [], []
    kw = dict(iterations=2, optimizer="lbfgs", lr=1.0, history_size=5)
    untiled = optimise(start, objective, on_step=lambda *a: totals_u.append(float(a[3])), **kw)
    tiled_objective = TiledObjective(objective, 48, on_tile=lambda *a: seen.append(a))
    tiled = optimise(start, tiled_objective, on_step=lambda *a: totals_t.append(float(a[3])), **kw)
    assert totals_t == pytest.approx(totals_u, rel=1e-6)
    assert _rel(tiled, untiled) < 1e-3
    assert _rel(tiled, start) > 1e-2
    n = len(tiled_objective.windows(size))
    assert n == 4
    assert seen[: 2 * n] == [(1, i, n) for i in range(1, n + 1)] + [
        (2, i, n) for i in range(1, n + 1)
    ]


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_tiled_targets_equal_the_whole_image_ones(pooling):
    from impasto.objective import style_grams
    from impasto.tiles import TiledEncoder
    from tests._tiny_vgg import tiny_encoder

    enc = tiny_encoder(pooling, torch.float64)
    image = _image(3, torch.float64)[..., :280, :]  # 280 px: not on the 16 px grid
    tiled = TiledEncoder(enc, TILE)
    content = ("relu2_1", "relu4_2")
    whole, parts = enc(image, content), tiled(image, content)
    for layer in content:
        assert parts[layer].shape == whole[layer].shape
        assert _rel(parts[layer], whole[layer]) < 1e-12
    layers = ("relu1_1", "relu3_1", "relu5_1")
    want, got = style_grams(enc, image, layers), style_grams(tiled, image, layers)
    for layer in layers:
        assert _rel(got[layer], want[layer]) < 1e-10
