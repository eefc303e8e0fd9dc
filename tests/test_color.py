"""Tests for impasto.color: YIQ, luminance transfer, colour/histogram matching, sRGB curves."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from impasto.color import (
    color_stats,
    combine_luminance,
    luminance,
    match_color,
    match_luminance,
    rgb_to_yiq,
    swap_colors,
    transfer_matrix,
    yiq_to_rgb,
)
from impasto.errors import ImageError, SettingsError

FAST = settings(max_examples=25, deadline=None)
SEEDS = st.integers(0, 2**31 - 1)
DTYPES = st.sampled_from([torch.float32, torch.float64])
METHODS = ("chol", "pca", "sym")
# (rtol, atol) per dtype for quantities of order one.
TOL = {torch.float64: (1e-9, 1e-10), torch.float32: (1e-4, 1e-5)}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rand(shape, seed, dtype=torch.float64, low=0.0, high=1.0) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=_gen(seed), dtype=dtype)


def _mixed_image(shape, seed, dtype=torch.float64) -> torch.Tensor:
    """Pixels ``Q diag(s) u + b``: a non-degenerate, well-conditioned colour distribution."""
    g = _gen(seed)
    lead, (h, w) = shape[:-3], shape[-2:]
    q, _ = torch.linalg.qr(torch.randn(*lead, 3, 3, generator=g, dtype=torch.float64))
    s = 0.2 + 0.6 * torch.rand(*lead, 3, generator=g, dtype=torch.float64)
    b = 0.2 + 0.6 * torch.rand(*lead, 3, 1, generator=g, dtype=torch.float64)
    u = torch.rand(*lead, 3, h * w, generator=g, dtype=torch.float64) - 0.5
    x = (q * s.unsqueeze(-2)) @ u + b
    return x.unflatten(-1, (h, w)).to(dtype)


def _close(actual, expected, dtype, scale=1.0):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(actual, expected, rtol=rtol * scale, atol=atol * scale)


# --------------------------------------------------------------------------------------- YIQ


@FAST
@given(seed=SEEDS, dtype=DTYPES, batch=st.sampled_from([(), (1,), (2,), (2, 3)]))
def test_yiq_round_trip_is_identity(seed, dtype, batch):
    rgb = _rand((*batch, 3, 5, 4), seed, dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(rgb)), rgb, rtol=0, atol=tol)
    yiq = rgb_to_yiq(rgb)
    torch.testing.assert_close(rgb_to_yiq(yiq_to_rgb(yiq)), yiq, rtol=0, atol=tol)
    assert rgb_to_yiq(rgb).dtype == dtype


def test_yiq_known_values():
    eye = torch.eye(3, dtype=torch.float64).reshape(3, 3, 1, 1)  # pure red, green, blue
    yiq = rgb_to_yiq(eye)[..., 0, 0]  # rows: colour, cols: Y, I, Q
    expected = torch.tensor(
        [[0.299, 0.5959, 0.2115], [0.587, -0.2746, -0.5227], [0.114, -0.3213, 0.3112]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(yiq, expected, rtol=0, atol=1e-15)
    # The exact inverse is close to the rounded textbook YIQ -> RGB matrix.
    inv = yiq_to_rgb(eye)[..., 0, 0].T
    textbook = torch.tensor(
        [[1.0, 0.956, 0.619], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]], dtype=torch.float64
    )
    torch.testing.assert_close(inv, textbook, rtol=0, atol=5e-3)


@FAST
@given(v=st.floats(0.0, 1.0), dtype=DTYPES)
def test_gray_has_luminance_v_and_no_chroma(v, dtype):
    gray = torch.full((2, 3, 3, 4), v, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    y = luminance(gray)
    assert y.shape == (2, 1, 3, 4)
    torch.testing.assert_close(y, torch.full_like(y, v), rtol=0, atol=tol)
    yiq = rgb_to_yiq(gray)
    torch.testing.assert_close(yiq[:, 0:1], y, rtol=0, atol=tol)
    assert yiq[:, 1:].abs().max().item() <= tol


def test_luminance_equals_yiq_y_channel():
    rgb = _rand((2, 3, 6, 5), 3)
    torch.testing.assert_close(luminance(rgb), rgb_to_yiq(rgb)[:, :1], rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "bad",
    [
        torch.rand(1, 4, 3, 3),
        torch.rand(3, 3),
        torch.zeros(1, 3, 2, 2, dtype=torch.uint8),
    ],
)
def test_bad_images_raise_image_error(bad):
    with pytest.raises(ImageError):
        rgb_to_yiq(bad)
    with pytest.raises(ImageError):
        luminance(bad)


# ------------------------------------------------------------------------- luminance transfer


def _mean_std(x):
    dims = (-3, -2, -1)
    return x.mean(dim=dims), x.std(dim=dims, unbiased=False)


@FAST
@given(seed=SEEDS, dtype=DTYPES, hw_s=st.tuples(st.integers(2, 9), st.integers(2, 9)))
def test_match_luminance_gives_target_mean_and_std(seed, dtype, hw_s):
    source = _rand((2, 1, *hw_s), seed, dtype, 0.1, 0.6)
    target = _rand((2, 1, 7, 5), seed + 1, dtype, 0.3, 1.0) ** 2
    source_before = source.clone()
    out = match_luminance(source, target)
    assert out.shape == source.shape and out.dtype == dtype
    mean_o, std_o = _mean_std(out)
    mean_t, std_t = _mean_std(target)
    _close(mean_o, mean_t, dtype)
    _close(std_o, std_t, dtype)
    assert torch.equal(source, source_before)
    # It is the affine map L' = sigma_t/sigma_s (L - mu_s) + mu_t: it keeps the pixel order.
    mean_s, std_s = _mean_std(source)
    expected = (source - mean_s[:, None, None, None]) * (std_t / std_s)[
        :, None, None, None
    ] + mean_t[:, None, None, None]
    _close(out, expected, dtype)


def test_match_luminance_flat_source_maps_to_target_mean():
    source = torch.full((1, 1, 4, 4), 0.3, dtype=torch.float64, requires_grad=True)
    target = _rand((1, 1, 5, 5), 9)
    out = match_luminance(source, target)
    torch.testing.assert_close(out, torch.full_like(out, target.mean().item()))
    out.sum().backward()
    assert torch.isfinite(source.grad).all()


def test_match_luminance_negative_eps_raises():
    with pytest.raises(SettingsError):
        match_luminance(torch.rand(1, 1, 2, 2), torch.rand(1, 1, 2, 2), eps=-1.0)


@FAST
@given(seed=SEEDS, dtype=DTYPES, batch=st.sampled_from([(), (1,), (3,)]))
def test_combine_luminance_takes_y_and_chroma(seed, dtype, batch):
    # Colour source in [0.2, 0.8] and y within 0.1 of its luminance: since the YIQ -> RGB matrix
    # maps a pure Y offset to the same offset on R, G and B, the result stays inside [0.1, 0.9].
    color = _rand((*batch, 3, 6, 5), seed, dtype, 0.2, 0.8)
    y = luminance(color) + _rand((*batch, 1, 6, 5), seed + 1, dtype, -0.1, 0.1)
    color_before, y_before = color.clone(), y.clone()
    out = combine_luminance(y, color)
    assert out.shape == color.shape and out.dtype == dtype
    assert out.min() > 0.05 and out.max() < 0.95  # nothing clipped
    _close(luminance(out), y, dtype)
    _close(rgb_to_yiq(out)[..., 1:, :, :], rgb_to_yiq(color)[..., 1:, :, :], dtype)
    assert torch.equal(color, color_before) and torch.equal(y, y_before)


def test_combine_luminance_clamps_and_broadcasts():
    color = (
        torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).reshape(1, 3, 1, 1).expand(1, 3, 2, 2)
    )
    y = torch.full((4, 1, 2, 2), 0.95, dtype=torch.float64)  # bright red is out of gamut
    out = combine_luminance(y, color)
    assert out.shape == (4, 3, 2, 2)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.max() == 1.0  # it did clip


def test_combine_luminance_size_mismatch_raises():
    with pytest.raises(ImageError):
        combine_luminance(torch.rand(1, 1, 4, 4), torch.rand(1, 3, 4, 5))
    with pytest.raises(ImageError):
        combine_luminance(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))


@FAST
@given(seed=SEEDS, dtype=DTYPES)
def test_swap_colors_keeps_content_chroma_and_stylized_luminance(seed, dtype):
    content = _rand((2, 3, 8, 6), seed, dtype, 0.3, 0.7)
    stylized = (content + _rand((2, 3, 8, 6), seed + 1, dtype, -0.15, 0.15)).clamp(0, 1)
    out = swap_colors(stylized, content)
    assert out.shape == content.shape
    _close(luminance(out), luminance(stylized), dtype)
    _close(rgb_to_yiq(out)[:, 1:], rgb_to_yiq(content)[:, 1:], dtype)
    # It is not a no-op: the chroma differs from the stylised image's.
    assert (rgb_to_yiq(out)[:, 1:] - rgb_to_yiq(stylized)[:, 1:]).abs().max() > 1e-3


# ------------------------------------------------------------------------- colour statistics


def test_color_stats_against_torch_cov():
    rgb = _rand((2, 3, 5, 7), 11)
    mean, cov = color_stats(rgb)
    assert mean.shape == (2, 3) and cov.shape == (2, 3, 3)
    for i in range(2):
        pixels = rgb[i].reshape(3, -1)
        torch.testing.assert_close(mean[i], pixels.mean(dim=1))
        torch.testing.assert_close(cov[i], torch.cov(pixels, correction=0))


@FAST
@given(seed=SEEDS, method=st.sampled_from(METHODS))
def test_transfer_matrix_maps_covariances(seed, method):
    _, cov_s = color_stats(_mixed_image((3, 6, 6), seed))
    _, cov_t = color_stats(_mixed_image((3, 5, 7), seed + 1))
    a = transfer_matrix(cov_s, cov_t, method)
    torch.testing.assert_close(a @ cov_s @ a.T, cov_t, rtol=1e-9, atol=1e-12)
    if method == "chol":
        torch.testing.assert_close(a, a.tril(), rtol=0, atol=1e-12)
    if method == "sym":
        torch.testing.assert_close(a, a.T, rtol=0, atol=1e-9)
        # The optimal-transport map moves colours least: tr((A - I) S (A - I)^T) is minimal.
        eye = torch.eye(3, dtype=torch.float64)

        def cost(m):
            return torch.trace((m - eye) @ cov_s @ (m - eye).T).item()

        for other in ("chol", "pca"):
            assert cost(a) <= cost(transfer_matrix(cov_s, cov_t, other)) + 1e-12


@FAST
@given(
    seed=SEEDS,
    dtype=DTYPES,
    method=st.sampled_from(METHODS),
    batch=st.sampled_from([(), (1,), (2,)]),
)
def test_match_color_gives_target_mean_and_covariance(seed, dtype, method, batch):
    source = _mixed_image((*batch, 3, 9, 8), seed, dtype)
    target = _mixed_image((*batch, 3, 6, 10), seed + 1, dtype)
    source_before = source.clone()
    out = match_color(source, target, method=method, eps=0.0, clamp=False)
    assert out.shape == source.shape and out.dtype == dtype
    mean_o, cov_o = color_stats(out)
    mean_t, cov_t = color_stats(target)
    _close(mean_o, mean_t, dtype, scale=10)
    _close(cov_o, cov_t, dtype, scale=10)
    assert torch.equal(source, source_before)
    # Default eps: the match is of the regularised covariances, off by eps (I - A A^T).
    eps = 1e-5
    out_eps = match_color(source, target, method=method, eps=eps, clamp=False)
    _, cov_eps = color_stats(out_eps)
    ridge = eps * torch.eye(3, dtype=torch.float64)
    _, cov_s = color_stats(source.double())
    a = transfer_matrix(cov_s + ridge, cov_t.double() + ridge, method)
    bound = eps * (1 + torch.linalg.matrix_norm(a, ord=2).max().item() ** 2)
    torch.testing.assert_close(cov_eps, cov_t, rtol=0, atol=bound + TOL[dtype][1] * 10)


def test_match_color_eps_error_is_as_documented():
    source = _mixed_image((3, 8, 8), 5)
    target = _mixed_image((3, 8, 8), 6)
    eps = 1e-3
    _, cov_s = color_stats(source)
    _, cov_t = color_stats(target)
    eye = torch.eye(3, dtype=torch.float64)
    for method in METHODS:
        a = transfer_matrix(cov_s + eps * eye, cov_t + eps * eye, method)
        _, cov_o = color_stats(match_color(source, target, method=method, eps=eps, clamp=False))
        torch.testing.assert_close(cov_o, cov_t + eps * (eye - a @ a.T), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_match_color_identity_when_source_is_target(method, dtype):
    image = _mixed_image((2, 3, 7, 7), 21, dtype).clamp(0, 1)
    out = match_color(image, image, method=method)
    _close(out, image, dtype, scale=10)


@pytest.mark.parametrize("method", METHODS)
def test_match_color_batch_equals_single_and_broadcasts(method):
    source = _mixed_image((3, 3, 6, 5), 31)
    target = _mixed_image((3, 3, 4, 9), 32)
    batch = match_color(source, target, method=method)
    for i in range(3):
        single = match_color(source[i], target[i], method=method)
        assert single.shape == (3, 6, 5)
        torch.testing.assert_close(batch[i], single, rtol=1e-12, atol=1e-12)
    # One target for a batch of sources.
    shared = match_color(source, target[0], method=method)
    assert shared.shape == source.shape
    torch.testing.assert_close(shared[2], match_color(source[2], target[0], method=method))


def test_match_color_clamp_and_flat_inputs():
    source = _mixed_image((3, 8, 8), 41) * 0.1 + 0.45  # low contrast
    target = _rand((3, 8, 8), 42)  # high contrast
    unclamped = match_color(source, target, method="pca", clamp=False)
    clamped = match_color(source, target, method="pca")
    assert clamped.min() >= 0 and clamped.max() <= 1
    torch.testing.assert_close(clamped, unclamped.clamp(0, 1))
    # A flat source maps to the target's mean colour; a gray target works with eps > 0.
    flat = torch.full((3, 4, 4), 0.7, dtype=torch.float64)
    mean_t, _ = color_stats(target)
    for method in METHODS:
        out = match_color(flat, target, method=method, clamp=False)
        torch.testing.assert_close(out, mean_t[:, None, None].expand_as(out))
    gray = luminance(target).expand(3, 8, 8)
    for method in METHODS:
        out = match_color(source, gray, method=method, clamp=False)
        assert torch.isfinite(out).all()
        # The result is (nearly) gray too: R, G and B almost equal.
        assert (out - out.mean(dim=0, keepdim=True)).abs().max() < 0.02


def test_match_color_errors():
    image = torch.rand(3, 4, 4)
    with pytest.raises(SettingsError):
        match_color(image, image, method="lab")
    with pytest.raises(SettingsError):
        match_color(image, image, eps=-1e-3)
    gray = torch.rand(1, 4, 4).expand(3, 4, 4)
    with pytest.raises(ImageError):
        match_color(gray, image, method="chol", eps=0.0)
    with pytest.raises(ImageError):
        match_color(torch.rand(1, 4, 4), image)


def test_match_color_half_precision():
    source = _mixed_image((3, 8, 8), 51).clamp(0, 1).half()
    target = _mixed_image((3, 8, 8), 52).clamp(0, 1).half()
    out = match_color(source, target)
    assert out.dtype == torch.float16
    mean_o, _ = color_stats(out.double())
    mean_t, _ = color_stats(target.double())
    torch.testing.assert_close(mean_o, mean_t, rtol=0, atol=2e-2)


# ---------------------------------------------------------------------------------- gradcheck


def test_gradcheck_combine_luminance():
    color = _rand((1, 3, 3, 3), 71, low=0.3, high=0.7).requires_grad_()
    y = luminance(color.detach()) + _rand((1, 1, 3, 3), 72, low=-0.05, high=0.05)
    y.requires_grad_()
    assert torch.autograd.gradcheck(combine_luminance, (y, color))


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_match_color(method):
    source = _mixed_image((3, 3, 3), 81).requires_grad_()
    target = _mixed_image((3, 2, 4), 82).requires_grad_()

    def fn(s, t):
        return match_color(s, t, method=method, clamp=False)

    assert torch.autograd.gradcheck(fn, (source, target))


def test_gradcheck_match_luminance():
    source = _rand((1, 1, 3, 3), 91).requires_grad_()
    target = _rand((1, 1, 2, 3), 92).requires_grad_()
    assert torch.autograd.gradcheck(match_luminance, (source, target))
