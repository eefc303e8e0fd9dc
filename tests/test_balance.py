"""impasto.balance: the loss scales. Paper mode is the identity; normalised weights turn the raw
eqs. (1) and (4) into the evaluator's relative errors, free of feature magnitudes and size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from impasto import balance, losses
from impasto.objective import RegionTarget, Targets

LAYERS_C = {"relu4_2": 1.0}
LAYERS_S = {"relu1_1": 0.5, "relu3_1": 0.5}


def _feats(seed: int, n: int = 8, h: int = 6, w: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn((1, n, h, w), generator=g))


def _targets(scale_c: float = 1.0, scale_s: float = 1.0) -> Targets:
    p = _feats(0) * scale_c
    a1 = losses.gram_matrix(_feats(1, n=4) * scale_s, normalize=True)
    a3 = losses.gram_matrix(_feats(2, n=8) * scale_s, normalize=True)
    return Targets({"relu4_2": p}, {"relu1_1": a1, "relu3_1": a3})


def _normalised_terms(t: Targets, f_c: torch.Tensor, f_s: dict[str, torch.Tensor]):
    """The normalised objective's two terms, computed with the raw losses as Objective does."""
    cw, sw = balance.layer_weights(t, "normalized", LAYERS_C, LAYERS_S)
    content = cw["relu4_2"] * losses.content_loss(f_c, t.content["relu4_2"])
    style = 0.0
    for layer, f in f_s.items():
        m = f.shape[-2] * f.shape[-1]
        style = style + sw[layer] * losses.style_layer_loss(f, t.grams[layer] * m)
    return float(content), float(style)


def test_paper_is_the_identity():
    t = _targets()
    cw, sw = balance.layer_weights(t, "paper", LAYERS_C, LAYERS_S)
    assert cw == LAYERS_C and sw == LAYERS_S
    assert cw is not LAYERS_C  # fresh dicts: the caller's are never modified


def test_normalised_terms_are_the_evaluators_relative_errors():
    t = _targets()
    f_c = _feats(10)
    f_s = {"relu1_1": _feats(11, n=4), "relu3_1": _feats(12, n=8)}
    content, style = _normalised_terms(t, f_c, f_s)
    p = t.content["relu4_2"]
    assert content == pytest.approx(float((f_c - p).pow(2).sum() / p.pow(2).sum()), rel=1e-5)
    rel = [
        float(
            (losses.gram_matrix(f, normalize=True) - t.grams[k]).pow(2).sum()
            / t.grams[k].pow(2).sum()
        )
        for k, f in f_s.items()
    ]
    assert style == pytest.approx(0.5 * rel[0] + 0.5 * rel[1], rel=1e-5)


@pytest.mark.parametrize("k_c, k_s", [(10.0, 1.0), (1.0, 0.1), (3.0, 30.0)])
def test_normalised_terms_are_invariant_to_feature_magnitudes(k_c, k_s):
    """Scaling the photo's features by k_c and the painting's by k_s (and the image's alike)
    leaves both terms unchanged; in paper mode they scale by k_c^2 and k_s^4."""
    f_c = _feats(10)
    f_s = {"relu1_1": _feats(11, n=4), "relu3_1": _feats(12, n=8)}
    base = _normalised_terms(_targets(), f_c, f_s)
    scaled = _normalised_terms(_targets(k_c, k_s), f_c * k_c, {k: v * k_s for k, v in f_s.items()})
    assert scaled == pytest.approx(base, rel=1e-5)
    raw = losses.content_loss(f_c * k_c, _targets(k_c).content["relu4_2"])
    assert float(raw) == pytest.approx(k_c**2 * float(losses.content_loss(f_c, _feats(0))), 1e-5)


def test_normalised_terms_are_invariant_to_output_size():
    """The same picture at twice the size (features upsampled 2x2) gives the same terms, so one
    strength means the same at every size and pyramid level."""
    f_c = _feats(10)
    f_s = {"relu1_1": _feats(11, n=4), "relu3_1": _feats(12, n=8)}
    t = _targets()
    up = lambda x: F.interpolate(x, scale_factor=2, mode="nearest")  # noqa: E731
    t2 = Targets({"relu4_2": up(t.content["relu4_2"])}, dict(t.grams))
    base = _normalised_terms(t, f_c, f_s)
    big = _normalised_terms(t2, up(f_c), {k: up(v) for k, v in f_s.items()})
    assert big == pytest.approx(base, rel=1e-5)


def test_region_only_layers_use_mass_weighted_region_factors():
    a = losses.gram_matrix(_feats(1, n=4), normalize=True)
    b = 2.0 * a
    regions = [
        RegionTarget({}, {"relu1_1": a}, {"relu1_1": 3.0}),
        RegionTarget({}, {"relu1_1": b}, {"relu1_1": 1.0}),
    ]
    t = Targets({}, {}, regions)
    _, sw = balance.layer_weights(t, "normalized", {}, {"relu1_1": 1.0})
    fa, fb = balance.style_factor(a), balance.style_factor(b)
    assert fb == pytest.approx(fa / 4)
    assert sw["relu1_1"] == pytest.approx((3 * fa + fb) / 4)


def test_zero_targets_and_missing_layers_keep_finite_weights():
    t = Targets({"relu4_2": torch.zeros(1, 4, 3, 3)}, {})
    cw, sw = balance.layer_weights(t, "normalized", {"relu4_2": 1.0}, {"relu5_1": 0.2})
    assert cw == {"relu4_2": 1.0} and sw == {"relu5_1": 0.2}


def test_unknown_loss_scale_is_refused():
    with pytest.raises(ValueError, match="loss scale"):
        balance.layer_weights(_targets(), "raw", LAYERS_C, LAYERS_S)


def test_content_area_factor():
    assert balance.content_area_factor("paper", (512, 340), (256, 170)) == pytest.approx(4.0)
    assert balance.content_area_factor("normalized", (512, 340), (256, 170)) == 1.0


def test_tv_factor_makes_a_mean_in_normalized_mode():
    img = torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    big = F.interpolate(img, scale_factor=4, mode="bilinear", align_corners=False)
    assert balance.tv_factor("paper", (10, 8)) == 1.0
    small_tv = balance.tv_factor("normalized", (10, 8)) * float(losses.tv_loss(img))
    big_tv = balance.tv_factor("normalized", (40, 32)) * float(losses.tv_loss(big))
    assert small_tv == pytest.approx(float(losses.tv_loss(img)) / 240)
    assert big_tv < small_tv  # upsampling smooths: a mean, not a sum that grows 16x
