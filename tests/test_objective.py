"""The objective of one scale: eqs. (1), (5), (7) composed from the tested losses, region
weighting, colour (1-channel) images, and the windowed pieces tiles are built from."""

import torch

from impasto import losses
from impasto.objective import (
    Objective,
    RegionInput,
    Window,
    compute_targets,
    layer_positions,
    rgb,
)
from tests._tiny_vgg import STYLE_LAYERS, tiny_encoder, tiny_objective

D = torch.float64


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def test_total_is_eq7_of_the_paper_losses():
    enc = tiny_encoder(dtype=D)
    photo, painting = _rand(1, 3, 64, 48, seed=1), _rand(1, 3, 80, 64, seed=2)
    image = _rand(1, 3, 64, 48, seed=3)
    layers = ("relu1_1", "relu3_1", "relu5_1")
    targets = compute_targets(enc, photo, ["relu4_2"], [painting], layers)
    sw = {"relu1_1": 0.5, "relu3_1": 0.3, "relu5_1": 0.2}
    obj = Objective(enc, targets, 2.0, 1e3, {"relu4_2": 1.0}, sw, tv_weight=0.1)
    total, parts = obj(image)

    f = enc(image, ["relu4_2", *layers])
    content = losses.content_loss(f["relu4_2"], targets.content["relu4_2"])
    style = sum(
        w * losses.style_layer_loss(f[k], targets.grams[k] * f[k].shape[-2] * f[k].shape[-1])
        for k, w in sw.items()
    )
    tv = 0.1 * losses.tv_loss(image)
    torch.testing.assert_close(parts["content"], 2.0 * content)
    torch.testing.assert_close(parts["style"], 1e3 * style)
    torch.testing.assert_close(parts["tv"], tv)
    torch.testing.assert_close(total, 2.0 * content + 1e3 * style + tv)


def test_position_normalised_targets_are_rescaled_to_the_image():
    # Targets are G/M of the painting; the objective multiplies by the image's M, so the
    # painting itself, and the painting tiled 2 x 2 (same statistics, 4x the positions), both
    # have a zero loss, while another image does not.
    enc = tiny_encoder(dtype=D)
    painting = _rand(1, 3, 32, 32, seed=4)
    t = compute_targets(enc, None, [], [painting], ["relu1_1"])
    obj = Objective(enc, t, 0.0, 1.0, {}, {"relu1_1": 1.0})
    total, parts = obj(painting)
    assert set(parts) == {"style"}
    assert total.item() < 1e-20
    # relu1_1 sees 1 px around: the seams of the 2 x 2 copy change only a few positions.
    other = obj(torch.full((1, 3, 64, 64), 0.5, dtype=D))[0].item()
    assert obj(painting.repeat(1, 1, 2, 2))[0].item() < 1e-2 * other


def test_a_region_over_everything_is_the_plain_style_loss():
    enc = tiny_encoder(dtype=D)
    painting, image = _rand(1, 3, 64, 64, seed=5), _rand(1, 3, 48, 64, seed=6)
    weights = dict(zip(STYLE_LAYERS, (0.2,) * 5))
    plain = compute_targets(enc, None, [], [painting], STYLE_LAYERS)
    everywhere = RegionInput(torch.ones(1, 1, 48, 64, dtype=D), [painting])
    region = compute_targets(enc, None, [], [], STYLE_LAYERS, regions=[everywhere])
    a, _ = Objective(enc, plain, 0.0, 1.0, {}, weights)(image)
    b, _ = Objective(enc, region, 0.0, 1.0, {}, weights)(image)
    torch.testing.assert_close(a, b)


def test_a_one_channel_image_is_its_three_channel_expansion():
    objective, _ = tiny_objective((48, 32), dtype=D)
    y = _rand(1, 1, 48, 32, seed=7)
    a, parts_a = objective(y)
    b, parts_b = objective(y.expand(-1, 3, -1, -1))
    torch.testing.assert_close(a, b)
    assert parts_a.keys() == parts_b.keys()
    assert rgb(y).shape == (1, 3, 48, 32)
    assert rgb(b.new_zeros(1, 3, 2, 2)).shape == (1, 3, 2, 2)


def test_terms_with_zero_weight_are_absent():
    enc = tiny_encoder(dtype=D)
    photo, painting = _rand(1, 3, 32, 32, seed=8), _rand(1, 3, 32, 32, seed=9)
    t = compute_targets(enc, photo, ["relu2_1"], [painting], ["relu1_1"])
    image = _rand(1, 3, 32, 32, seed=10)
    only_content = Objective(enc, t, 1.0, 0.0, {"relu2_1": 1.0}, {"relu1_1": 1.0})
    assert set(only_content(image)[1]) == {"content"}
    assert only_content.layers == ("relu2_1",)
    only_style = Objective(enc, t, 0.0, 1.0, {"relu2_1": 1.0}, {"relu1_1": 1.0})
    assert set(only_style(image)[1]) == {"style"}
    # A layer weight for a layer without a target is dropped.
    extra = Objective(enc, t, 1.0, 1.0, {"relu2_1": 1.0}, {"relu1_1": 1.0, "relu3_1": 1.0})
    assert extra.layers == ("relu2_1", "relu1_1")


def test_window_positions_at_each_stride():
    w = Window(top=32, left=16, bottom=64, right=48, origin=(16, 0))
    assert w.box == (16, 16, 48, 48)
    assert w.owned(16) == (slice(2, 4), slice(1, 3))
    assert w.local(16) == (slice(1, 3), slice(1, 3))
    assert w.owned(1) == (slice(32, 64), slice(16, 48))
    assert w.local(4) == (slice(4, 12), slice(4, 12))
    assert layer_positions((70, 50), ["relu1_1", "relu5_1"]) == {"relu1_1": 3500, "relu5_1": 12}


def test_windowed_pieces_add_up_to_the_whole():
    # Two windows split the rows at 32 px; each sees the whole image (no halo needed here since
    # both crops are the image itself), so each piece is a plain sum over owned positions.
    objective, enc = tiny_objective((64, 48), dtype=D)
    image = _rand(1, 3, 64, 48, seed=11)
    feats = enc(image, objective.layers)
    halves = [Window(0, 0, 32, 48), Window(32, 0, 64, 48)]
    whole = objective.grams(feats)
    for key, g in whole.items():
        torch.testing.assert_close(sum(objective.grams(feats, w)[key] for w in halves), g)
    torch.testing.assert_close(
        sum(objective.content(feats, w) for w in halves), objective.content(feats)
    )
    torch.testing.assert_close(sum(objective.tv(image, w) for w in halves), objective.tv(image))
    assert {r for r, _ in whole} == {None, 0}  # the whole-image target and the region


def _region_style_by_hand(enc, image, painting, mask, weight, layer_weights):
    """The region's style term written out from the formula the objective documents:
    ``sum_l w_l lambda (m_l / M_l) E_l``, with ``E_l = sum (G - m_l A)^2 / (4 N^2 m_l^2)``,
    ``G`` the Gram of the masked features, ``A = G_s / M_s`` the painting's Gram per position,
    ``m_l`` the mask's mass at layer l and ``M_l`` the image's positions there."""
    feats = enc(image, list(layer_weights))
    styles = enc(painting, list(layer_weights))
    total = torch.zeros((), dtype=D)
    for lay, w in layer_weights.items():
        f, s = feats[lay], styles[lay]
        n, h, wd = f.shape[1:]
        m = mask(h, wd)
        mass = float(m.pow(2).sum())
        x = (f * m).reshape(n, -1)
        y = s.reshape(n, -1)
        a = y @ y.T / y.shape[1]
        e = (x @ x.T - mass * a).pow(2).sum() / (4.0 * n * n * mass * mass)
        total = total + w * weight * (mass / (h * wd)) * e
    return total


def test_a_region_is_weighted_by_its_weight_and_its_share_of_the_positions():
    # A guide over the left quarter of the image (its edge on every layer's grid, so each
    # layer's guide is exactly the left quarter of its positions: mass M_l / 4) and weight 2:
    # the region's term is w_l * 2 * (1/4) * E_l, not w_l * E_l.
    enc = tiny_encoder(dtype=D)
    h, w = 64, 64
    painting, image = _rand(1, 3, 48, 80, seed=12), _rand(1, 3, h, w, seed=13)
    weights = dict(zip(STYLE_LAYERS, (0.1, 0.3, 0.2, 0.25, 0.15)))

    def quarter(hh, ww):
        m = torch.zeros(1, 1, hh, ww, dtype=D)
        m[..., : ww // 4] = 1.0
        return m

    def style_term(weight):
        region = RegionInput(quarter(h, w), [painting], weight=weight)
        t = compute_targets(enc, None, [], [], STYLE_LAYERS, regions=[region])
        assert t.regions[0].mass == {
            lay: float(layer_positions((h, w), [lay])[lay]) / 4 for lay in STYLE_LAYERS
        }
        _, parts = Objective(enc, t, 0.0, 1.0, {}, weights)(image)
        return parts["style"]

    two = style_term(2.0)
    expected = _region_style_by_hand(enc, image, painting, quarter, 2.0, weights)
    torch.testing.assert_close(two, expected)
    assert two.item() > 0
    torch.testing.assert_close(style_term(4.0), 2 * two)
    torch.testing.assert_close(style_term(1.0), two / 2)
