"""RunCache: each piece of shared work computed once, keyed by exactly what it depends on."""

import pytest
from PIL import Image

from impasto.api import RunCache, Stylizer
from impasto.settings import Settings

TINY = Settings(size=40, iterations=1, pyramid_start=0, seed=0, precision="fp32", device="cpu")


@pytest.fixture
def images(tmp_path):
    paths = {}
    for name, size, color in (
        ("a", (40, 30), (200, 60, 20)),
        ("b", (30, 40), (20, 160, 90)),
        ("s", (32, 32), (30, 40, 220)),
    ):
        paths[name] = tmp_path / f"{name}.png"
        Image.effect_noise(size, 40).convert("RGB").save(paths[name])
        del color
    return paths


def test_a_paintings_grams_are_reused_across_photos(images):
    cache = RunCache()
    Stylizer(TINY).run(images["a"], images["s"], cache=cache)
    Stylizer(TINY.replace(size=48)).run(images["b"], images["s"], cache=cache)
    Stylizer(TINY).run(images["b"], images["s"], cache=cache)
    # run 1: content a + style at 40x30; run 2: content b + style at 36x48 (new size);
    # run 3: content b at 30x40 (new) + the style at 30x40 ... whose Grams depend on the size
    assert cache.stats["encoders_built"] == 1 and cache.stats["images_loaded"] == 3
    assert cache.stats["targets_computed"] == 6 and cache.stats["targets_reused"] == 0
    Stylizer(TINY.replace(style_weight=5.0)).run(images["a"], images["s"], cache=cache)
    assert cache.stats["targets_reused"] == 2


def test_same_size_photos_share_style_targets_unless_a_colour_mode_ties_them(images, tmp_path):
    other = tmp_path / "a2.png"
    Image.effect_noise((40, 30), 60).convert("RGB").save(other)
    cache = RunCache()
    Stylizer(TINY).run(images["a"], images["s"], cache=cache)
    Stylizer(TINY).run(other, images["s"], cache=cache)
    assert cache.stats["targets_computed"] == 3 and cache.stats["targets_reused"] == 1
    hist = TINY.replace(preserve_colors="histogram")
    Stylizer(hist).run(images["a"], images["s"], cache=cache)
    Stylizer(hist).run(other, images["s"], cache=cache)
    # recoloured to each photo: the paintings' Grams differ per photo (the photos' features
    # do not depend on this mode and are reused)
    assert cache.stats["targets_computed"] == 3 + 1 + 1


def test_forget_drops_a_photo_and_its_content_targets(images):
    cache = RunCache()
    Stylizer(TINY).run(images["a"], images["s"], cache=cache)
    cache.forget(images["a"])
    Stylizer(TINY).run(images["a"], images["s"], cache=cache)
    assert cache.stats["images_loaded"] == 3  # a decoded again, s kept
    assert cache.stats["targets_computed"] == 3 and cache.stats["targets_reused"] == 1
