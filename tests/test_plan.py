"""The plan stage: every input problem is found before the first iteration."""

import pytest
import torch
from PIL import Image

from impasto.cache import RunCache
from impasto.errors import SettingsError
from impasto.plan import make_plan
from impasto.regions import Region
from impasto.settings import Settings, StyleInput

TINY = Settings(size=64, iterations=2, pyramid_start=0, seed=1, precision="fp32", device="cpu")


def _img(tmp_path, name, size, color=(200, 120, 40)):
    path = tmp_path / name
    Image.new("RGB", size, color).save(path)
    return path


def test_plan_fixes_layers_weights_scales_and_seed(tmp_path):
    photo, painting = _img(tmp_path, "p.png", (80, 60)), _img(tmp_path, "s.png", (50, 50))
    s = TINY.replace(size=96, pyramid_start=24, pyramid_iterations=3)
    plan = make_plan(s, photo, painting, None, RunCache())
    assert plan.content_layers == ("relu4_2",) and len(plan.style_layers) == 5
    assert sum(plan.content_weights.values()) == pytest.approx(1.0)
    assert all(w == pytest.approx(0.2) for w in plan.style_weights.values())
    # 24 px (18 px short side) is too small for relu5_1's 16x pooling ... kept; the final
    # size is 96x72; all levels are at least 16 px on the short side.
    assert plan.size == (96, 72) and all(min(sc.size) >= 16 for sc in plan.scales)
    assert plan.total_steps == sum(sc.iterations for sc in plan.scales)
    assert plan.seed == 1 and plan.content.shape == (1, 3, 60, 80)


def test_seed_is_drawn_once_when_not_given(tmp_path):
    photo, painting = _img(tmp_path, "p.png", (40, 30)), _img(tmp_path, "s.png", (32, 32))
    plan = make_plan(TINY.replace(seed=None), photo, painting, None, RunCache())
    assert 0 <= plan.seed < 2**31


@pytest.mark.parametrize(
    ("settings", "content", "styles", "message"),
    [
        (TINY.replace(size=40), "wide", "s", "too small for layer relu5_1"),
        (TINY.replace(init="content"), None, "s", "init: 'content' needs a content image"),
        (TINY, None, None, "nothing to do"),
        (TINY.replace(preserve_colors="luminance"), None, "s", "needs a content image"),
        (TINY.replace(preserve_colors="histogram"), "p", None, "needs a style image"),
        (TINY.replace(style_weight=0), None, "s", "both loss terms are off"),
    ],
)
def test_bad_combinations_fail_before_any_work(tmp_path, settings, content, styles, message):
    files = {
        "p": _img(tmp_path, "p.png", (40, 30)),
        "wide": _img(tmp_path, "wide.png", (200, 20)),
        "s": _img(tmp_path, "s.png", (32, 32)),
    }
    with pytest.raises(SettingsError, match=message):
        make_plan(settings, files.get(content), files.get(styles), None, RunCache())


def test_style_layer_sets_and_masks_are_checked(tmp_path):
    photo, painting = _img(tmp_path, "p.png", (40, 30)), _img(tmp_path, "s.png", (32, 32))
    odd = StyleInput(painting, layers=("relu1_1",))
    with pytest.raises(SettingsError, match="not among the style layers"):
        make_plan(TINY.replace(style_layers=("relu2_1",)), photo, odd, None, RunCache())
    square_mask = torch.ones(1, 1, 30, 30)
    with pytest.raises(SettingsError, match="aspect ratio"):
        make_plan(TINY, photo, (), [Region(square_mask, painting)], RunCache())
    with pytest.raises(SettingsError, match="regions need a content image"):
        make_plan(TINY, None, painting, [Region(square_mask, painting)], RunCache())


def test_init_path_that_is_no_image_fails_up_front(tmp_path):
    photo, painting = _img(tmp_path, "p.png", (40, 30)), _img(tmp_path, "s.png", (32, 32))
    with pytest.raises(SettingsError, match="contnet"):
        make_plan(TINY.replace(init="contnet"), photo, painting, None, RunCache())
