import json
import threading

import pytest
import torch
from PIL import Image

import impasto
from impasto.api import Stylizer, reconstruct_content, reconstruct_style, stylize
from impasto.errors import Cancelled, ImageError, SettingsError
from impasto.image import load_image, resize
from impasto.settings import Settings, StyleInput

TINY = Settings(size=48, iterations=3, seed=0, precision="fp32")


def test_stylize_returns_image_with_content_aspect(content_path, style_path):
    img = stylize(content_path, style_path, TINY)
    assert isinstance(img, Image.Image)
    w, h = Image.open(content_path).size
    assert max(img.size) == 48 and img.size[1] == round(48 * h / w)


def test_same_seed_same_output_on_cpu(content_path, style_path):
    a = Stylizer(TINY).run(content_path, style_path).image
    b = Stylizer(TINY).run(content_path, style_path).image
    c = Stylizer(TINY, seed=1).run(content_path, style_path).image
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_callback_sees_every_iteration_and_loss_falls(content_path, style_path):
    seen = []
    r = Stylizer(TINY, iterations=12).run(content_path, style_path, callback=seen.append)
    assert [it.step for it in seen] == list(range(1, 13))
    assert seen[-1].is_last and seen[0].total_steps == 12
    assert set(seen[0].losses) == {"content", "style", "tv"}  # TV 3 by default
    assert seen[-1].loss < seen[0].loss
    assert seen[0].image.shape == r.image.shape
    assert len(r.history) == 12 and r.history[-1]["loss"] == pytest.approx(seen[-1].loss)


def test_pyramid_reports_scales(content_path, style_path):
    seen = []
    s = TINY.replace(size=64, pyramid_start=32, pyramid_iterations=2, iterations=2)
    r = Stylizer(s).run(content_path, style_path, callback=seen.append)
    assert [it.scale for it in seen] == [0, 0, 1, 1]
    assert max(seen[0].size) == 32 and max(seen[-1].size) == 64
    assert max(r.image.shape[-2:]) == 64


def test_cancel_event_and_callback_cancel(content_path, style_path):
    ev = threading.Event()
    ev.set()
    with pytest.raises(Cancelled):
        Stylizer(TINY).run(content_path, style_path, cancel=ev)

    def stop(it):
        if it.step == 2:
            raise Cancelled("user stop")

    with pytest.raises(Cancelled):
        Stylizer(TINY).run(content_path, style_path, callback=stop)


def test_adam_clamps_and_runs(content_path, style_path):
    r = Stylizer(TINY, optimizer="adam", learning_rate=0.5).run(content_path, style_path)
    assert 0 <= r.image.min() and r.image.max() <= 1


def test_iterate_averaging_reaches_the_result(content_path, style_path):
    seen = []
    s = TINY.replace(iterations=4, ema_decay=0.5)
    r = Stylizer(s).run(content_path, style_path, callback=seen.append)
    plain = Stylizer(TINY.replace(iterations=4)).run(content_path, style_path)
    assert torch.equal(seen[-1].image.clamp(0, 1), r.image)  # the preview shows the average
    assert not torch.equal(r.image, plain.image)


def test_tv_default_follows_the_loss_scale(content_path, style_path):
    # normalized: TV 3 (a mean per pixel value) is on by default; paper: the raw eqs., no TV
    for scale, tv_on in (("normalized", True), ("paper", False)):
        seen = []
        Stylizer(TINY.replace(loss_scale=scale)).run(content_path, style_path, callback=seen.append)
        assert ("tv" in seen[-1].losses) == tv_on, scale
        assert not tv_on or float(seen[-1].losses["tv"]) > 0
    seen = []
    Stylizer(TINY.replace(tv_weight=0)).run(content_path, style_path, callback=seen.append)
    assert set(seen[-1].losses) == {"content", "style"}


def test_inits(content_path, style_path, tiny_rgb):
    zero = TINY.replace(iterations=0, init="content")
    content = load_image(content_path).rgb
    r = Stylizer(zero, init="content").run(content_path, style_path)
    torch.testing.assert_close(r.image, resize(content, (48, 32)))
    # a start image of another aspect ratio (4:3 for a 3:2 output) is cropped to its centre
    # (rows 1..27 of 30), not stretched, and the run says so
    r = Stylizer(zero, init=str(tiny_rgb)).run(content_path, style_path)
    torch.testing.assert_close(r.image, resize(load_image(tiny_rgb).rgb[..., 1:28, :], (48, 32)))
    assert any(n.kind == "init" and "cropped" in n.text and n.warning for n in r.notes)
    r = Stylizer(zero, init="style").run(content_path, style_path)  # 1024x811 -> 1024x683
    painting = load_image(style_path).rgb
    torch.testing.assert_close(r.image, resize(painting[..., 64:747, :], (48, 32)))
    # 0 iterations from noise would only write the random start: refused before any work
    with pytest.raises(SettingsError, match="random start image"):
        Stylizer(zero, init="noise")


def test_reconstruct_content_approaches_photo(content_path):
    s = Settings(size=40, iterations=40, seed=0)
    r = reconstruct_content(content_path, "relu1_1", s)
    photo = resize(load_image(content_path).rgb, tuple(reversed(r.image.shape[-2:])))
    start = (
        Stylizer(s.replace(iterations=1), content_layers=("relu1_1",), style_weight=0)
        .run(content_path)
        .image
    )
    assert (r.image - photo).abs().mean() < 0.5 * (start - photo).abs().mean()
    assert r.history[-1]["content"] < 0.1 * r.history[0]["content"]
    assert "style" not in r.history[-1]


@pytest.mark.parametrize("scale, drop", [("paper", 0.2), ("normalized", 0.5)])
def test_reconstruct_style_is_texture_synthesis(style_path, scale, drop):
    settings = Settings(size=40, iterations=30, seed=2, loss_scale=scale)
    r = reconstruct_style(style_path, ["relu1_1", "relu2_1"], settings)
    assert "content" not in r.history[-1]
    # (normalized: a relative Gram error, from ~0.5 for noise; paper: raw eq. (4) sums)
    assert r.history[-1]["style"] < drop * r.history[0]["style"]
    w, h = Image.open(style_path).size
    assert r.image.shape[-1] == 40 and r.image.shape[-2] == round(40 * h / w)


def test_reconstructions_have_no_tv_unless_asked(content_path, style_path):
    """Stylizing's default TV (3 with the normalized scale) smoothed every reconstruction: a
    deep layer's lost detail looked kept. Off unless settings or a keyword give a weight."""
    s = Settings(size=32, iterations=2, seed=0)
    assert s.tv == 3.0  # the stylizer's default, which reconstructions do not take
    for r in (reconstruct_content(content_path, "relu2_1", s),
              reconstruct_style(style_path, ["relu1_1"], s)):  # fmt: skip
        assert r.settings.tv == 0.0 and "tv" not in r.history[-1]
    assert reconstruct_content(content_path, "relu2_1", s, tv_weight=1.0).settings.tv == 1.0
    given = reconstruct_style(style_path, ["relu1_1"], s.replace(tv_weight=2.0))
    assert given.settings.tv == 2.0 and given.history[-1]["tv"] > 0


def test_metadata_records_settings_and_seed(content_path, style_path, tmp_path):
    r = Stylizer(TINY.replace(seed=None)).run(content_path, [StyleInput(style_path, weight=2.0)])
    out = tmp_path / "out.png"
    r.save(out)
    from impasto.image import read_metadata

    meta = json.loads(read_metadata(out)["impasto"])
    assert meta["seed"] == r.seed and meta["settings"]["seed"] == r.seed
    assert meta["settings"]["size"] == 48 and meta["version"] == impasto.__version__
    # the weights in use are recorded, not "default": a later default change cannot alter a replay
    assert (meta["settings"]["style_weight"], meta["settings"]["tv_weight"]) == (10.0, 3.0)
    assert meta["inputs"]["styles"][0] == {"name": "starry_night.jpg", "weight": 2.0, "scale": None}
    # Re-running with the recorded settings reproduces the image.
    again = Stylizer(impasto.Settings.from_dict(meta["settings"])).run(
        content_path, [StyleInput(style_path, weight=2.0)]
    )
    torch.testing.assert_close(again.image, r.image)


def test_errors(content_path, style_path, tmp_path):
    with pytest.raises(SettingsError, match="nothing to do"):
        Stylizer(TINY).run(None, [])
    with pytest.raises(SettingsError, match="both loss terms are off"):
        Stylizer(TINY, content_weight=0).run(content_path, [])
    # bundled examples by name, as on the command line (was 'example:chelsea: no such file')
    r = Stylizer(TINY).run("example:chelsea", "example:starry_night")
    r.save(tmp_path / "ex.png")
    assert r.image.shape[-1] == 48 and (tmp_path / "ex.png").is_file()
    with pytest.raises(SettingsError, match="available: example:chelsea"):
        Stylizer(TINY).run("example:nope", style_path)
    with pytest.raises(SettingsError, match="give at least one style image"):  # was a silent
        stylize(content_path, [], size=32, iterations=1)  # content reconstruction; the CLI's rule
    with pytest.raises(ImageError, match="no such file"):
        Stylizer(TINY).run(tmp_path / "missing.jpg", style_path)
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.from_dict({"size": 64, "colour": "red"})
    with pytest.raises(SettingsError, match="size: Input should be greater than or equal to 16"):
        Settings(size=3)


def test_progress_is_pixel_weighted_over_the_pyramid(content_path, style_path):
    seen = []
    s = TINY.replace(size=64, pyramid_start=32, pyramid_iterations=4, iterations=4)
    Stylizer(s).run(content_path, style_path, callback=seen.append)
    # 4 coarse steps (32 px) cost about a quarter of 4 fine ones (64 px).
    assert seen[3].progress == pytest.approx(0.2, abs=0.02)
    assert seen[-1].progress == pytest.approx(1.0)
    assert [it.progress for it in seen] == sorted(it.progress for it in seen)
    assert seen[-1].eta == pytest.approx(0.0)
