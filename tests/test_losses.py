"""The losses against the paper's equations (1)-(7), including the hand-derived gradients."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from impasto import losses

D = torch.float64  # exact comparisons; never set the global default dtype


def _relu_features(seed: int, n: int = 6, h: int = 5, w: int = 4):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1, n, h, w, generator=g, dtype=torch.float64).requires_grad_(True)
    return z, torch.relu(z)


@given(st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_content_gradient_is_eq2(seed):
    # eq. (2): dL/dF = (F - P) where F > 0, else 0; autograd through the ReLU gives exactly that.
    z, f = _relu_features(seed)
    p = torch.relu(torch.randn_like(f))
    loss = losses.content_loss(f, p)
    (grad,) = torch.autograd.grad(loss, z)
    expected = torch.where(f > 0, f - p, torch.zeros_like(f))
    torch.testing.assert_close(grad, expected)


@given(st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_style_gradient_is_eq6(seed):
    # eq. (6): dE/dF_ij = 1/(N^2 M^2) ((F^T (G - A))_ji) where F_ij > 0, else 0.
    z, f = _relu_features(seed)
    n, m = f.shape[1], f.shape[2] * f.shape[3]
    a = losses.gram_matrix(torch.relu(torch.randn_like(f)))
    loss = losses.style_layer_loss(f, a)
    (grad,) = torch.autograd.grad(loss, z)
    fm = f.reshape(n, m)
    g = fm @ fm.T
    hand = (fm.T @ (g - a[0])).T / (n**2 * m**2)  # (F^T (G - A))_ji, shaped like F (N x M)
    expected = torch.where(fm > 0, hand, torch.zeros_like(hand)).reshape_as(f)
    torch.testing.assert_close(grad, expected)


def test_gram_is_eq3():
    f = torch.randn(2, 3, 4, 5, dtype=D)
    g = losses.gram_matrix(f)
    for b in range(2):
        fl = f[b].reshape(3, -1)
        for i in range(3):
            for j in range(3):
                assert math.isclose(g[b, i, j].item(), (fl[i] * fl[j]).sum().item(), rel_tol=1e-6)
    torch.testing.assert_close(losses.gram_matrix(f, normalize=True), g / 20)


@given(st.integers(0, 10_000), st.booleans())
@settings(max_examples=20, deadline=None)
def test_the_grams_one_product_gradient_is_autograds_two(seed, masked):
    """gram_matrix differentiates as eq. (6), (D + D^T) F in one product; autograd through
    bmm(F, F^T) takes two and adds them: the same gradient, and a Gram of its own gradient."""
    g = torch.Generator().manual_seed(seed)
    f = torch.rand(2, 4, 5, 3, generator=g, dtype=D).requires_grad_(True)
    d = torch.randn(2, 4, 4, generator=g, dtype=D)  # not symmetric: the general case
    mask = torch.rand(1, 1, 5, 3, generator=g, dtype=D) if masked else None
    fm = f if mask is None else f * mask
    flat = fm.reshape(2, 4, -1)
    (autograds,) = torch.autograd.grad((d * torch.bmm(flat, flat.transpose(1, 2))).sum(), f)
    (ours,) = torch.autograd.grad((d * losses.gram_matrix(f, mask)).sum(), f)
    torch.testing.assert_close(ours, autograds)
    assert torch.autograd.gradcheck(lambda x: losses.gram_matrix(x, mask), (f,))
    assert torch.autograd.gradgradcheck(lambda x: losses.gram_matrix(x, mask), (f,))


def test_bf16_features_give_a_float32_gram_and_a_bf16_gradient_close_to_float32s():
    """Mixed precision: the Gram is summed in float32; its gradient comes back in the features'
    bf16 (what the network's backward pass takes) within bf16's rounding of float32's."""
    g = torch.Generator().manual_seed(3)
    f16 = torch.rand(1, 16, 12, 10, generator=g).bfloat16().requires_grad_(True)
    f32 = f16.detach().float().requires_grad_(True)  # the same values in float32
    d = torch.randn(1, 16, 16, generator=g)
    gram16, gram32 = losses.gram_matrix(f16), losses.gram_matrix(f32)
    assert gram16.dtype == torch.float32
    torch.testing.assert_close(gram16, gram32)
    (grad16,) = torch.autograd.grad((d * gram16).sum(), f16)
    (grad32,) = torch.autograd.grad((d * gram32).sum(), f32)
    assert grad16.dtype == torch.bfloat16
    scale = grad32.abs().max().item()
    torch.testing.assert_close(grad16.float(), grad32, rtol=1e-2, atol=1e-2 * scale)
    # the tiles' explicit gradient: the same product, returned in float32 for their sums
    tiles16 = losses.gram_backward(f16.detach(), d)
    assert tiles16.dtype == torch.float32
    torch.testing.assert_close(tiles16, grad16.float(), rtol=1e-2, atol=1e-2 * scale)


def test_float16_features_keep_small_gram_gradients():
    """float16 would flush dL/dG entries under 6e-8 to zero before the product: its product runs
    in float32 (bf16 has float32's range and keeps its own)."""
    f = (torch.rand(1, 8, 6, 5, generator=torch.Generator().manual_seed(1)) * 100).half()
    d = torch.full((1, 8, 8), 1e-9)  # zero in float16; the products are ~1e-5, representable
    (grad,) = torch.autograd.grad((d * losses.gram_matrix(f.requires_grad_())).sum(), f)
    assert grad.dtype == torch.float16 and grad.abs().min().item() > 0
    assert losses.gram_backward(f.detach(), d).abs().min().item() > 0


def test_style_layer_loss_is_eq4():
    f = torch.rand(1, 3, 2, 2, dtype=D)
    a = torch.rand(1, 3, 3, dtype=D)
    g = losses.gram_matrix(f)
    expected = ((g - a) ** 2).sum() / (4 * 3**2 * 4**2)
    torch.testing.assert_close(losses.style_layer_loss(f, a), expected)


def test_content_loss_is_eq1_and_zero_for_identical():
    f, p = torch.rand(1, 4, 3, 3, dtype=D), torch.rand(1, 4, 3, 3, dtype=D)
    torch.testing.assert_close(losses.content_loss(f, p), 0.5 * ((f - p) ** 2).sum())
    assert losses.content_loss(f, f).item() == 0
    assert losses.style_layer_loss(f, losses.gram_matrix(f)).item() == 0


@given(st.integers(0, 10_000))
@settings(max_examples=20, deadline=None)
def test_style_loss_invariant_to_spatial_shuffle(seed):
    g = torch.Generator().manual_seed(seed)
    f = torch.rand(1, 5, 6, 7, generator=g, dtype=D)
    perm = torch.randperm(42, generator=g)
    shuffled = f.reshape(1, 5, 42)[..., perm].reshape(1, 5, 6, 7)
    torch.testing.assert_close(losses.gram_matrix(shuffled), losses.gram_matrix(f))
    a = losses.gram_matrix(torch.rand(1, 5, 6, 7, generator=g, dtype=D))
    torch.testing.assert_close(losses.style_layer_loss(shuffled, a), losses.style_layer_loss(f, a))
    # ... while the content loss is not.
    assert losses.content_loss(shuffled, f).item() > 0


def test_style_loss_is_eq5_weighted_sum_of_gram_losses():
    feats = {"a": torch.rand(1, 2, 3, 3, dtype=D), "b": torch.rand(1, 4, 2, 2, dtype=D)}
    targets = {k: losses.gram_matrix(torch.rand_like(v)) for k, v in feats.items()}
    grams = {k: losses.gram_matrix(v) for k, v in feats.items()}
    total = losses.style_loss(grams, targets, {"a": 0.25, "b": 0.75}, {"a": 9, "b": 4})
    expected = 0.25 * losses.style_layer_loss(
        feats["a"], targets["a"]
    ) + 0.75 * losses.style_layer_loss(feats["b"], targets["b"])
    torch.testing.assert_close(total, expected)
    # Zero-weight and absent layers do not count; nothing at all gives None.
    only_a = losses.style_loss(grams, targets, {"a": 1.0, "b": 0.0, "c": 1.0}, {"a": 9})
    torch.testing.assert_close(only_a, losses.style_layer_loss(feats["a"], targets["a"]))
    assert losses.style_loss(grams, targets, {"b": 0.0}, {}) is None


def test_gram_loss_of_a_sum_of_tiles_is_the_whole_images():
    # A Gram matrix is a sum over positions: split the positions, add the pieces' Grams.
    f = torch.rand(1, 3, 6, 5, dtype=D)
    a = losses.gram_matrix(torch.rand_like(f))
    g = losses.gram_matrix(f[..., :2, :]) + losses.gram_matrix(f[..., 2:, :])
    torch.testing.assert_close(losses.gram_loss(g, a, 30), losses.style_layer_loss(f, a))


def test_content_backward_is_the_gradient_of_eq1():
    f = torch.rand(1, 4, 3, 3, dtype=D).requires_grad_(True)
    p = torch.rand(1, 4, 3, 3, dtype=D)
    (expected,) = torch.autograd.grad(losses.content_loss(f, p), f)
    torch.testing.assert_close(losses.content_backward(f.detach(), p), expected)


@given(st.integers(0, 10_000), st.booleans())
@settings(max_examples=20, deadline=None)
def test_gram_backward_is_the_gradient_through_the_gram(seed, masked):
    g = torch.Generator().manual_seed(seed)
    f = torch.rand(1, 4, 5, 3, generator=g, dtype=D).requires_grad_(True)
    d = torch.randn(1, 4, 4, generator=g, dtype=D)  # not symmetric: the general case
    mask = torch.rand(1, 1, 5, 3, generator=g, dtype=D) if masked else None
    (expected,) = torch.autograd.grad((d * losses.gram_matrix(f, mask)).sum(), f)
    torch.testing.assert_close(losses.gram_backward(f.detach(), d, mask), expected)


def test_total_loss_is_eq7():
    c, s = torch.tensor(3.0, dtype=D), torch.tensor(5.0, dtype=D)
    assert losses.total_loss(c, s, 2.0, 0.5).item() == pytest.approx(8.5)
    assert losses.total_loss(
        c, s, 2.0, 0.5, (10.0, torch.tensor(1.0, dtype=D))
    ).item() == pytest.approx(18.5)


def test_tv_loss_zero_for_flat_and_positive_otherwise():
    assert losses.tv_loss(torch.full((1, 3, 4, 4), 0.3, dtype=D)).item() == 0
    x = torch.zeros(1, 1, 2, 2, dtype=D)
    x[..., 0, 0] = 1
    assert losses.tv_loss(x).item() == pytest.approx(2.0)
    # squared differences, not absolute ones (with 0/1 pixels both give 2)
    x[..., 0, 0] = 0.5
    assert losses.tv_loss(x).item() == pytest.approx(2 * 0.25)


@given(st.integers(0, 10_000), st.integers(1, 6), st.integers(1, 6))
@settings(max_examples=20, deadline=None)
def test_tv_loss_over_a_partition_of_boxes_is_the_whole_images(seed, cut_y, cut_x):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, 7, 7, generator=g, dtype=D)
    boxes = [
        (0, 0, cut_y, cut_x),
        (0, cut_x, cut_y, 7),
        (cut_y, 0, 7, cut_x),
        (cut_y, cut_x, 7, 7),
    ]
    tiled = sum(losses.tv_loss(x, box) for box in boxes)
    torch.testing.assert_close(tiled, losses.tv_loss(x))
    # A crop that contains the box (and one pixel past it) gives the same pairs.
    crop = x[..., cut_y - 1 :, cut_x - 1 :]
    own = (1, 1, 7 - cut_y + 1, 7 - cut_x + 1)
    torch.testing.assert_close(losses.tv_loss(crop, own), losses.tv_loss(x, (cut_y, cut_x, 7, 7)))


def test_bf16_features_reduce_in_float32():
    f = torch.rand(1, 8, 16, 16).to(torch.bfloat16)
    assert losses.gram_matrix(f).dtype == torch.float32
    assert losses.content_loss(f, f.float()).dtype == torch.float32
