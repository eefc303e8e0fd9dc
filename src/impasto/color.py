"""Pure tensor colour functions behind impasto's colour controls.

Two papers by Gatys, Bethge, Hertzmann and Shechtman describe how to keep the content image's
colours in neural style transfer:

* "Preserving Color in Neural Artistic Style Transfer", arXiv:1606.05897 (2016), and
* "Controlling Perceptual Factors in Neural Style Transfer", CVPR 2017, section 5
  ("Colour Control"), which repeats both methods and compares them.

What each function implements:

* :func:`match_color`, :func:`color_stats`, :func:`transfer_matrix`: arXiv:1606.05897 section 2,
  "Color histogram matching" (CVPR 2017 section 5). A linear map ``x' = A (x - mu_s) + mu_t`` of
  the source pixels, with ``A Sigma_s A^T = Sigma_t``, gives them the target's mean and colour
  covariance. ``A`` comes from Cholesky factors (``A = L_t L_s^-1``) or from symmetric matrix square
  roots (the Image Analogies variant ``A = Sigma_t^1/2 Sigma_s^-1/2``, which the paper found to work
  slightly better); we add the closed-form optimal-transport (Monge-Kantorovich) map as a third
  choice. The paper matches the style to the content (``match_color(style, content)``); impasto
  also offers the reverse.
* :func:`rgb_to_yiq`, :func:`yiq_to_rgb`, :func:`luminance`, :func:`match_luminance`,
  :func:`combine_luminance`: arXiv:1606.05897 section 3, "Luminance-only transfer" (CVPR 2017
  section 5). Style transfer runs on the Y channel of YIQ; the style's luminance is first matched
  to the content's mean and standard deviation, ``L_s' = sigma_c / sigma_s (L_s - mu_s) + mu_c``;
  the result's Y is then recombined with the content's I and Q channels.
* :func:`swap_colors`: the same recombination applied after the fact to a finished RGB result
  (keep the stylised luminance, take the content's chroma).

Conventions: images are tensors shaped ``(*, 3, H, W)`` (``(*, 1, H, W)`` for luminance) with RGB
values in ``[0, 1]`` and a floating dtype. Leading batch dimensions broadcast. Statistics are taken
per image over all pixels, with population (biased, divide-by-N) moments. Constants are built on the
input's device and dtype, inputs are never modified, and everything is differentiable with respect
to its floating inputs.
"""

from __future__ import annotations

import torch

from .errors import ImageError, SettingsError

__all__ = [
    "rgb_to_yiq",
    "yiq_to_rgb",
    "luminance",
    "match_luminance",
    "combine_luminance",
    "swap_colors",
    "color_stats",
    "transfer_matrix",
    "match_color",
    "COLOR_MATCH_METHODS",
]

from .choices import COLOR_MATCHES as COLOR_MATCH_METHODS

# NTSC (FCC 1953) RGB -> YIQ. Rows: Y, I, Q. Every row of I and Q sums to zero, so grays have no
# chroma, and the Y row sums to one, so a gray's luminance is its value.
_YIQ_FROM_RGB = (
    (0.299, 0.587, 0.114),
    (0.5959, -0.2746, -0.3213),
    (0.2115, -0.5227, 0.3112),
)
# The exact inverse (computed once in float64), not the rounded textbook matrix, so that
# ``yiq_to_rgb(rgb_to_yiq(x)) == x`` to float64 precision.
_RGB_FROM_YIQ = tuple(
    tuple(row)
    for row in torch.linalg.inv(torch.tensor(_YIQ_FROM_RGB, dtype=torch.float64)).tolist()
)

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_image(x: torch.Tensor, name: str, channels: int | None = 3) -> None:
    """Raise :class:`ImageError` unless ``x`` is a floating tensor shaped ``(*, C, H, W)``."""
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ImageError(f"{name} must have a floating dtype, got {x.dtype}")
    if x.ndim < 3:
        raise ImageError(f"{name} must be shaped (*, C, H, W), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[-3] != channels:
        raise ImageError(
            f"{name} must have {channels} channel(s) in dim -3, got shape {tuple(x.shape)}"
        )


def _constant(values: object, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, device=like.device, dtype=like.dtype)


def _apply_matrix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a ``(3, 3)`` matrix to the channel vector of every pixel of ``(*, 3, H, W)``."""
    return torch.einsum("ij,...jhw->...ihw", matrix, x)


def rgb_to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    """Convert RGB to NTSC YIQ (arXiv:1606.05897 section 3).

    Args:
        rgb: ``(*, 3, H, W)`` RGB image, values nominally in ``[0, 1]``.

    Returns:
        ``(*, 3, H, W)`` tensor with channels Y (luminance, in ``[0, 1]`` for RGB in ``[0, 1]``),
        I and Q (chroma, zero for grays).

    Raises:
        ImageError: ``rgb`` is not a floating ``(*, 3, H, W)`` tensor.
    """
    _check_image(rgb, "rgb")
    return _apply_matrix(_constant(_YIQ_FROM_RGB, rgb), rgb)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """Convert NTSC YIQ back to RGB; the exact inverse of :func:`rgb_to_yiq` (no clamping).

    Args:
        yiq: ``(*, 3, H, W)`` tensor with channels Y, I, Q.

    Returns:
        ``(*, 3, H, W)`` RGB tensor, not clamped (out-of-gamut YIQ gives values outside
        ``[0, 1]``).

    Raises:
        ImageError: ``yiq`` is not a floating ``(*, 3, H, W)`` tensor.
    """
    _check_image(yiq, "yiq")
    return _apply_matrix(_constant(_RGB_FROM_YIQ, yiq), yiq)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """The Y channel of YIQ: ``0.299 R + 0.587 G + 0.114 B``.

    Args:
        rgb: ``(*, 3, H, W)`` RGB image.

    Returns:
        ``(*, 1, H, W)`` luminance.

    Raises:
        ImageError: ``rgb`` is not a floating ``(*, 3, H, W)`` tensor.
    """
    _check_image(rgb, "rgb")
    weights = _constant(_YIQ_FROM_RGB[0], rgb)
    return torch.einsum("j,...jhw->...hw", weights, rgb).unsqueeze(-3)


def _mean_std(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean and population std over the last three dims, kept for broadcasting.

    The variance is clamped at ``eps**2`` before the square root so that flat images give a finite
    std and finite gradients.
    """
    dims = (-3, -2, -1)
    mean = x.mean(dim=dims, keepdim=True)
    var = (x - mean).square().mean(dim=dims, keepdim=True)
    return mean, var.clamp_min(eps * eps).sqrt()


def match_luminance(
    source_y: torch.Tensor, target_y: torch.Tensor, *, eps: float = 1e-8
) -> torch.Tensor:
    """Match the source luminance's mean and std to the target's (arXiv:1606.05897 section 3).

    ``L_s' = sigma_t / sigma_s * (L_s - mu_s) + mu_t``, with the mean and population standard
    deviation taken per image over all pixels. In impasto's use the source is the style's
    luminance and the target the content's. The result is not clamped (it may leave ``[0, 1]``).

    Args:
        source_y: ``(*, 1, H, W)`` luminance to transform (any channel count is accepted; the
            statistics are then pooled over channels and pixels).
        target_y: ``(*, 1, H', W')`` luminance whose statistics to copy; its size may differ from
            the source's and leading dims broadcast.
        eps: standard deviations are clamped below at ``eps``, so a flat source maps to the
            target's mean instead of dividing by zero.

    Returns:
        Tensor shaped like ``source_y`` (after broadcasting leading dims) whose mean and std equal
        the target's (the std exactly, unless a std is below ``eps``).

    Raises:
        ImageError: an input is not a floating ``(*, C, H, W)`` tensor.
        SettingsError: ``eps`` is negative.
    """
    _check_image(source_y, "source_y", channels=None)
    _check_image(target_y, "target_y", channels=None)
    if not eps >= 0:
        raise SettingsError(f"eps must be >= 0, got {eps}")
    mu_s, sigma_s = _mean_std(source_y, eps)
    mu_t, sigma_t = _mean_std(target_y, eps)
    return (source_y - mu_s) * (sigma_t / sigma_s) + mu_t


def combine_luminance(y: torch.Tensor, color_source_rgb: torch.Tensor) -> torch.Tensor:
    """Take the luminance from ``y`` and the chroma (I, Q) from ``color_source_rgb``.

    The recombination step of luminance-only transfer (arXiv:1606.05897 section 3): the stylised
    luminance gets the content's I and Q channels back. Resize ``color_source_rgb`` to ``y``'s
    size beforehand.

    Args:
        y: ``(*, 1, H, W)`` luminance.
        color_source_rgb: ``(*, 3, H, W)`` RGB image giving the chroma; leading dims broadcast.

    Returns:
        ``(*, 3, H, W)`` RGB clamped to ``[0, 1]``. Where nothing clips, its luminance is ``y``
        and its I, Q are the colour source's; clipping changes both where the combination leaves
        the RGB cube.

    Raises:
        ImageError: wrong shapes or dtypes, or the spatial sizes differ.
    """
    _check_image(y, "y", channels=1)
    _check_image(color_source_rgb, "color_source_rgb")
    if y.shape[-2:] != color_source_rgb.shape[-2:]:
        raise ImageError(
            f"luminance is {tuple(y.shape[-2:])} but the colour source is "
            f"{tuple(color_source_rgb.shape[-2:])}; resize the colour source first"
        )
    chroma = rgb_to_yiq(color_source_rgb)[..., 1:, :, :]
    lead = torch.broadcast_shapes(y.shape[:-3], chroma.shape[:-3])
    yiq = torch.cat(
        (y.expand(*lead, *y.shape[-3:]), chroma.expand(*lead, *chroma.shape[-3:])), dim=-3
    )
    return yiq_to_rgb(yiq).clamp(0.0, 1.0)


def swap_colors(stylized_rgb: torch.Tensor, content_rgb: torch.Tensor) -> torch.Tensor:
    """Keep the stylised image's luminance and the content image's colours (post-hoc).

    ``combine_luminance(luminance(stylized_rgb), content_rgb)``.

    Args:
        stylized_rgb: ``(*, 3, H, W)`` stylised result.
        content_rgb: ``(*, 3, H, W)`` content image at the same size.

    Returns:
        ``(*, 3, H, W)`` RGB clamped to ``[0, 1]``.

    Raises:
        ImageError: wrong shapes or dtypes, or the spatial sizes differ.
    """
    return combine_luminance(luminance(stylized_rgb), content_rgb)


def color_stats(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean colour and colour covariance over all pixels.

    Args:
        rgb: ``(*, 3, H, W)`` RGB image.

    Returns:
        ``(mean, cov)``: ``mean`` shaped ``(*, 3)`` and the population (divide-by-N) covariance
        ``cov`` shaped ``(*, 3, 3)``.

    Raises:
        ImageError: ``rgb`` is not a floating ``(*, 3, H, W)`` tensor.
    """
    _check_image(rgb, "rgb")
    pixels = rgb.flatten(-2)  # (*, 3, N)
    mean = pixels.mean(dim=-1)
    centered = pixels - mean.unsqueeze(-1)
    cov = centered @ centered.transpose(-1, -2) / pixels.shape[-1]
    return mean, cov


def _sym_sqrt(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Symmetric square root (or inverse square root) of symmetric positive definite matrices."""
    evals, evecs = torch.linalg.eigh(cov)
    tiny = torch.finfo(cov.dtype).tiny
    roots = evals.clamp_min(tiny).sqrt()
    if inverse:
        roots = roots.reciprocal()
    return (evecs * roots.unsqueeze(-2)) @ evecs.transpose(-1, -2)


def _cholesky(cov: torch.Tensor, name: str) -> torch.Tensor:
    factor, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ImageError(
            f"the {name} image's colour covariance is not positive definite "
            "(a flat or gray image?); use eps > 0"
        )
    return factor


def transfer_matrix(
    cov_source: torch.Tensor, cov_target: torch.Tensor, method: str = "chol"
) -> torch.Tensor:
    """A matrix ``A`` with ``A cov_source A^T = cov_target`` (arXiv:1606.05897 section 2).

    Args:
        cov_source: ``(*, 3, 3)`` symmetric positive definite covariance of the source.
        cov_target: ``(*, 3, 3)`` symmetric positive definite covariance of the target.
        method: ``"chol"``: ``A = L_t L_s^-1`` from Cholesky factors ``Sigma = L L^T``.
            ``"pca"``: the Image Analogies map ``A = Sigma_t^1/2 Sigma_s^-1/2`` with symmetric
            (eigendecomposition) square roots, the variant the paper reports as giving better
            results. ``"sym"``: the symmetric map
            ``A = Sigma_s^-1/2 (Sigma_s^1/2 Sigma_t Sigma_s^1/2)^1/2 Sigma_s^-1/2``, the
            closed-form optimal transport (Monge-Kantorovich) map between Gaussians, which moves
            colours the least of all such maps.

    Returns:
        ``(*, 3, 3)`` transfer matrix (leading dims broadcast).

    Raises:
        SettingsError: unknown ``method``.
        ImageError: ``method="chol"`` and a covariance is not positive definite.
    """
    if method not in COLOR_MATCH_METHODS:
        raise SettingsError(
            f"colour match method must be one of {', '.join(COLOR_MATCH_METHODS)}, got {method!r}"
        )
    if method == "chol":
        l_s = _cholesky(cov_source, "source")
        l_t = _cholesky(cov_target, "target")
        lead = torch.broadcast_shapes(l_s.shape[:-2], l_t.shape[:-2])
        l_s = l_s.expand(*lead, 3, 3)
        # A = L_t L_s^-1  <=>  A L_s = L_t  <=>  L_s^T A^T = L_t^T (upper triangular solve).
        a_t = torch.linalg.solve_triangular(
            l_s.transpose(-1, -2), l_t.transpose(-1, -2).expand(*lead, 3, 3), upper=True
        )
        return a_t.transpose(-1, -2)
    if method == "pca":
        return _sym_sqrt(cov_target) @ _sym_sqrt(cov_source, inverse=True)
    root_s = _sym_sqrt(cov_source)
    inv_root_s = _sym_sqrt(cov_source, inverse=True)
    middle = root_s @ cov_target @ root_s
    middle = (middle + middle.transpose(-1, -2)) / 2  # symmetric up to rounding; make it exact
    return inv_root_s @ _sym_sqrt(middle) @ inv_root_s


def match_color(
    source_rgb: torch.Tensor,
    target_rgb: torch.Tensor,
    *,
    method: str = "chol",
    eps: float = 1e-5,
    clamp: bool = True,
) -> torch.Tensor:
    """Give the source's pixels the target's mean colour and colour covariance.

    Colour histogram matching of arXiv:1606.05897 section 2 (CVPR 2017 section 5): every source
    pixel ``x`` becomes ``A (x - mu_s) + mu_t`` with ``A Sigma_s A^T = Sigma_t`` (see
    :func:`transfer_matrix` for the choices of ``A``). ``match_color(style, content)`` recolours
    the style to the content's palette (the paper's use); ``match_color(content, style)`` is the
    reverse.

    ``eps`` is added to the diagonal of both covariances, so the match is of the regularised
    covariances: the output covariance is ``Sigma_t + eps (I - A A^T)``, off by ``O(eps)``. With
    ``clamp=True`` the result is clipped to ``[0, 1]``; the mean and covariance then only match
    approximately where the linear map sends pixels out of the RGB cube (e.g. a low-contrast
    source mapped to a high-contrast target near black or white).

    Args:
        source_rgb: ``(*, 3, H, W)`` image to recolour.
        target_rgb: ``(*, 3, H', W')`` image whose colour statistics to copy; sizes may differ
            and leading dims broadcast.
        method: ``"chol"``, ``"pca"`` or ``"sym"`` (see :func:`transfer_matrix`).
        eps: diagonal regularisation of the covariances (>= 0). It keeps flat or gray images
            usable: a flat source maps to the target's mean colour.
        clamp: clip the result to ``[0, 1]``.

    Returns:
        Tensor shaped like ``source_rgb`` (after broadcasting leading dims), same dtype.

    Raises:
        ImageError: wrong shapes or dtypes, or (``eps=0`` and ``"chol"``) a degenerate covariance.
        SettingsError: unknown ``method`` or negative ``eps``.
    """
    work = _match_dtype(source_rgb, target_rgb, method, eps)
    source, target = source_rgb.to(work), target_rgb.to(work)
    mu_s, cov_s = color_stats(source)
    mu_t, cov_t = color_stats(target)
    if eps > 0:
        ridge = eps * torch.eye(3, device=source.device, dtype=work)
        cov_s = cov_s + ridge
        cov_t = cov_t + ridge
    a = transfer_matrix(cov_s, cov_t, method)

    pixels = source.flatten(-2) - mu_s.unsqueeze(-1)  # (*, 3, N)
    out = a @ pixels + mu_t.unsqueeze(-1)
    out = out.unflatten(-1, source.shape[-2:])
    if clamp:
        out = out.clamp(0.0, 1.0)
    return out.to(source_rgb.dtype)


def _match_dtype(
    source: torch.Tensor, target: torch.Tensor, method: str, eps: float
) -> torch.dtype:
    """Check :func:`match_color`'s arguments; the dtype to work in (linalg has no
    half-precision kernels: float32 for fp16/bf16 inputs)."""
    _check_image(source, "source_rgb")
    _check_image(target, "target_rgb")
    if method not in COLOR_MATCH_METHODS:
        raise SettingsError(
            f"colour match method must be one of {', '.join(COLOR_MATCH_METHODS)}, got {method!r}"
        )
    if not eps >= 0:
        raise SettingsError(f"eps must be >= 0, got {eps}")
    if source.dtype in _LOW_PRECISION:
        return torch.float32
    return torch.promote_types(source.dtype, target.dtype)
