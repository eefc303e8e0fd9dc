"""The artist's controls, checked by their effect on numbers (not only that they run).

Colour (luminance-only, histogram matching both ways, swap), spatial control (regions from masks
and label images, guided Grams, unstyled regions), several styles (blend, per-style scale),
coarse/fine mixing (per-style layer sets) and output fidelity (alpha, 16 bits, ICC) end to end.
"""

import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

import impasto.pyramid as pyramid
from impasto import color, examples
from impasto.api import RunCache, Stylizer
from impasto.cli import main
from impasto.cli.stylize import parse_label_style, parse_region
from impasto.color_pipeline import ColorPipeline
from impasto.encoder import load_encoder
from impasto.errors import SettingsError
from impasto.guides import background_guide, feather_guide, propagate_guide
from impasto.image import fit_long_side, load_image, resize
from impasto.objective import (
    Objective,
    RegionInput,
    Targets,
    blended_grams,
    compute_targets,
    style_grams,
)
from impasto.regions import Region, label_guides, regions_from_labels
from impasto.settings import Settings, StyleInput

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def prepare_colors(mode, content, styles):
    pipeline = ColorPipeline(mode)
    pipeline.check(content is not None, len(styles))
    return pipeline.prepare(content, styles)


FAST = Settings(size=48, iterations=12, seed=0, precision="fp32", pooling="avg")  # = encoder()


def _small(name: str, long_side: int) -> Image.Image:
    im = Image.open(examples.path(name)).convert("RGB")
    return im.resize(fit_long_side(im.size, long_side), Image.BICUBIC)


@pytest.fixture(scope="module")
def photo():
    return _small("chelsea", 72)  # 72x48


@pytest.fixture(scope="module")
def starry():
    return _small("starry_night", 64)


@pytest.fixture(scope="module")
def wave():
    return _small("great_wave", 64)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("avg", last="relu5_1")


class _Targets(list):
    """The engine computes a scale's content features and its style Grams in two calls of
    compute_targets (each cached on its own); ``spy[i]`` merges the i-th such pair into one
    record shaped like a single call: args[1] the content, args[3] the styles."""

    def __getitem__(self, i):
        pairs, pending = [], None
        for call in list.__iter__(self):
            if call["args"][1] is not None:
                pending = call
                continue
            args = list(call["args"])
            if pending is not None:
                args[1], args[2] = pending["args"][1], pending["args"][2]
            targets = call["targets"]
            if pending is not None:
                targets = Targets(pending["targets"].content, targets.grams, targets.regions)
            pairs.append({"args": args, "kwargs": call["kwargs"], "targets": targets})
            pending = None
        return pairs[i]


@pytest.fixture
def spy(monkeypatch):
    """Record the arguments of every compute_targets call made by the engine."""
    calls = _Targets()
    real = pyramid.compute_targets

    def wrapper(*args, **kwargs):
        t = real(*args, **kwargs)
        calls.append({"args": args, "kwargs": kwargs, "targets": t})
        return t

    monkeypatch.setattr(pyramid, "compute_targets", wrapper)
    return calls


def _t(img: Image.Image) -> torch.Tensor:
    return load_image(img).rgb


def _chroma(rgb: torch.Tensor) -> torch.Tensor:
    return color.rgb_to_yiq(rgb)[:, 1:]


def _unclipped(rgb: torch.Tensor) -> torch.Tensor:
    return ((rgb > 0.002) & (rgb < 0.998)).all(dim=1)


# ------------------------------------------------------------------------------------------
# 1. colour control


@pytest.fixture(scope="module")
def plain(photo, starry):
    """An ordinary run (no colour control) with the FAST settings."""
    return Stylizer(FAST).run(photo, starry).image


@pytest.mark.parametrize("mode", ["luminance", "swap"])
def test_colour_preserving_modes_keep_content_chroma(photo, starry, plain, mode):
    kept = Stylizer(FAST, preserve_colors=mode).run(photo, starry).image
    content = resize(_t(photo), (kept.shape[-1], kept.shape[-2]))
    ok = _unclipped(kept)
    assert ok.float().mean() > 0.5
    err_kept = (_chroma(kept) - _chroma(content)).abs().amax(dim=1)[ok].mean()
    err_plain = (_chroma(plain) - _chroma(content)).abs().amax(dim=1).mean()
    assert err_kept < 0.01  # the content's I and Q, up to 8-bit-free float rounding
    assert err_plain > 0.05  # without the control the painting's colours come through
    # ... while the luminance was stylised: it moved away from the photo's
    dy = (color.luminance(kept) - color.luminance(content)).abs().mean()
    assert dy > 0.03


def test_luminance_mode_feeds_matched_gray_images(photo, starry, spy):
    Stylizer(FAST, preserve_colors="luminance", iterations=0, init="content").run(photo, starry)
    args = spy[0]["args"]
    content_in, style_in = args[1], args[3][0]
    for img in (content_in, style_in):
        assert torch.equal(img[:, 0], img[:, 1]) and torch.equal(img[:, 1], img[:, 2])
    y_c = color.luminance(resize(_t(photo), (content_in.shape[-1], content_in.shape[-2])))
    assert torch.allclose(content_in[:, :1], y_c, atol=1e-5)
    # style luminance mean/std matched to the content's (before resizing, so loosely here)
    _, styles = prepare_colors("luminance", _t(photo), [_t(starry)])
    y_s, y_p = styles[0][:, :1], color.luminance(_t(photo))
    assert y_s.mean() == pytest.approx(float(y_p.mean()), abs=1e-4)
    assert y_s.std(unbiased=False) == pytest.approx(float(y_p.std(unbiased=False)), rel=1e-3)
    assert abs(float(style_in.mean()) - float(y_p.mean())) < 0.02


def test_histogram_mode_gives_styles_the_content_colour_statistics(photo, starry, spy):
    c, s = _t(photo), _t(starry)
    mu_c, cov_c = color.color_stats(c)
    mu_s, cov_s = color.color_stats(s)
    assert (mu_s - mu_c).abs().max() > 0.05  # the inputs really differ
    _, (matched,) = prepare_colors("histogram", c, [s])
    mu_m, cov_m = color.color_stats(matched)
    assert (mu_m - mu_c).abs().max() < 0.01
    assert torch.linalg.matrix_norm(cov_m - cov_c) / torch.linalg.matrix_norm(cov_c) < 0.05
    # ... and the engine computes its targets from that recoloured style
    Stylizer(FAST, preserve_colors="histogram", iterations=0, init="content").run(photo, starry)
    used = spy[0]["args"][3][0]
    mu_u, _ = color.color_stats(used)
    assert (mu_u - mu_c).abs().max() < 0.02


def test_histogram_reverse_recolours_the_content(photo, starry, spy):
    c, s = _t(photo), _t(starry)
    matched, styles = prepare_colors("histogram-reverse", c, [s])
    assert torch.equal(styles[0], s)
    mu_m, cov_m = color.color_stats(matched)
    mu_s, cov_s = color.color_stats(s)
    assert (mu_m - mu_s).abs().max() < 0.02
    mu_c, cov_c = color.color_stats(c)
    before = torch.linalg.matrix_norm(cov_c - cov_s) / torch.linalg.matrix_norm(cov_s)
    after = torch.linalg.matrix_norm(cov_m - cov_s) / torch.linalg.matrix_norm(cov_s)
    assert after < 0.15 and after < 0.5 * before  # (clipping to [0, 1] costs a little)
    Stylizer(FAST, preserve_colors="histogram-reverse", iterations=0, init="content").run(
        photo, starry
    )
    mu_u, _ = color.color_stats(spy[0]["args"][1])
    assert (mu_u - mu_s).abs().max() < 0.03


def test_color_match_end_to_end_through_the_cli(tmp_path, photo, starry, capsys):
    """``--color-match`` reaches the engine: with ``--preserve-colors histogram`` the three
    mappings give the styles the photo's colour statistics by different maps (so different
    pictures), the choice is recorded in the output's metadata, and a bad name is one line."""
    photo.save(tmp_path / "photo.png")
    starry.save(tmp_path / "starry.png")
    outs = {}
    for method in ("chol", "pca", "sym"):
        out = tmp_path / f"{method}.png"
        args = [tmp_path / "photo.png", tmp_path / "starry.png", "-o", out, "--size", 40]
        args += ["--iterations", 4, "--seed", 1, "--preserve-colors", "histogram"]
        assert main([*map(str, args), "--color-match", method, "-q"]) == 0
        with Image.open(out) as im:
            outs[method] = np.asarray(im.convert("RGB")).astype(int)
            assert f'"color_match": "{method}"' in im.info.get("impasto", "")
    assert np.abs(outs["chol"] - outs["pca"]).max() > 0
    assert np.abs(outs["chol"] - outs["sym"]).max() > 0
    capsys.readouterr()
    bad = [str(tmp_path / "photo.png"), str(tmp_path / "starry.png"), "-o", str(tmp_path / "x.png")]
    assert main([*bad, "--color-match", "lab"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "color-match" in err
    assert not (tmp_path / "x.png").exists()


def test_prepare_colors_errors():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(SettingsError, match="content image"):
        prepare_colors("swap", None, [x])
    with pytest.raises(SettingsError, match="needs a style"):
        prepare_colors("histogram", x, [])
    c, s = prepare_colors("none", x, [x])
    assert c is x and s[0] is x


# ------------------------------------------------------------------------------------------
# 2. spatial control


def _halves(w: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    left = torch.zeros(1, 1, h, w)
    left[..., : w // 2] = 1
    return left, 1 - left


def test_unstyled_region_stays_close_to_the_content(photo, starry):
    w, h = photo.size
    left, right = _halves(w, h)
    s = FAST.replace(init="content", iterations=15, size=64)
    regions = [Region(left, starry), Region(right, None)]
    out = Stylizer(s).run(photo, [], regions=regions).image
    everywhere = Stylizer(s).run(photo, starry).image
    content = resize(_t(photo), (out.shape[-1], out.shape[-2]))
    ow = out.shape[-1]
    band = ow // 8  # leave out the feathered boundary
    diff = (out - content).abs().mean(dim=1)[0]
    styled_err = diff[:, : ow // 2 - band].mean()
    unstyled_err = diff[:, ow // 2 + band :].mean()
    global_err = (everywhere - content).abs().mean(dim=1)[0][:, ow // 2 + band :].mean()
    assert styled_err > 0.05
    assert unstyled_err < 0.5 * styled_err
    assert unstyled_err < 0.5 * global_err


def test_one_region_over_everything_is_the_plain_style_loss(photo, starry, encoder):
    c = resize(_t(photo), (48, 32))
    st = resize(_t(starry), fit_long_side(starry.size, 48))
    plain = compute_targets(encoder, c, ("relu4_2",), [st], LAYERS)
    full = torch.ones(1, 1, 32, 48)
    guided = compute_targets(
        encoder, c, ("relu4_2",), [], LAYERS, regions=[RegionInput(full, [st])]
    )
    assert not guided.grams and len(guided.regions) == 1
    for layer in LAYERS:
        assert torch.allclose(guided.regions[0].grams[layer], plain.grams[layer])
    weights = dict.fromkeys(LAYERS, 0.2)
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    a, _ = Objective(encoder, plain, 1.0, 1e3, {"relu4_2": 1.0}, weights)(x)
    b, _ = Objective(encoder, guided, 1.0, 1e3, {"relu4_2": 1.0}, weights)(x)
    assert float(b) == pytest.approx(float(a), rel=1e-4)


def test_region_targets_are_each_regions_style_with_guides_per_layer(photo, starry, wave, encoder):
    c = resize(_t(photo), (48, 32))
    a = resize(_t(starry), fit_long_side(starry.size, 48))
    b = resize(_t(wave), fit_long_side(wave.size, 48))
    left, right = _halves(48, 32)
    t = compute_targets(
        encoder,
        c,
        (),
        [],
        LAYERS,
        regions=[RegionInput(left, [a], weight=2.0), RegionInput(right, [b])],
    )
    ga, gb = style_grams(encoder, a, LAYERS), style_grams(encoder, b, LAYERS)
    feats = encoder(c, LAYERS)
    for r, g in ((t.regions[0], ga), (t.regions[1], gb)):
        for layer in LAYERS:
            assert torch.allclose(r.grams[layer], g[layer])
            assert r.guides[layer].shape[-2:] == feats[layer].shape[-2:]
            assert r.mass[layer] == pytest.approx(float(r.guides[layer].pow(2).sum()))
    assert t.regions[0].weight == 2.0
    # half of the positions on each side at every layer
    m = feats["relu1_1"].shape[-1] * feats["relu1_1"].shape[-2]
    assert t.regions[0].mass["relu1_1"] == pytest.approx(m / 2)


def test_global_styles_paint_what_no_region_covers(photo, starry, wave, spy):
    w, h = photo.size
    left, _ = _halves(w, h)
    Stylizer(FAST, iterations=0, init="content").run(
        photo, [wave], regions=[Region(left, starry, feather=0)]
    )
    kw = spy[0]["kwargs"]
    assert spy[0]["args"][3] == []  # no unguided target: everything goes through guides
    regions = kw["regions"]
    assert len(regions) == 2
    assert torch.allclose(regions[1].guide, 1 - regions[0].guide)
    assert regions[1].styles[0].shape[-1] == 48  # the wave, at this scale


def test_guide_propagation_area_and_inside(encoder):
    w, h = 50, 37  # odd sizes: VGG's floor pooling drops edge positions
    x = torch.rand(1, 3, h, w)
    feats = encoder(x, LAYERS)
    ones = propagate_guide(torch.ones(1, 1, h, w), LAYERS, "area")
    for layer in LAYERS:
        assert ones[layer].shape[-2:] == feats[layer].shape[-2:]
        assert torch.allclose(ones[layer], torch.ones_like(ones[layer]))
    left, _ = _halves(w, h)
    area = propagate_guide(left, LAYERS, "area")
    inside = propagate_guide(left, LAYERS, "inside")
    for layer in LAYERS:
        assert inside[layer].shape == area[layer].shape
    assert area["relu1_1"].mean() == pytest.approx(0.5, abs=0.02)
    assert area["relu3_1"][..., 0].min() == 1 and area["relu3_1"][..., -1].max() == 0
    # inside erodes with the receptive field: less mass at every deeper layer, none at relu5_1
    assert float(inside["relu2_1"].sum()) < float(area["relu2_1"].sum())
    assert float(inside["relu5_1"].sum()) == 0.0
    with pytest.raises(SettingsError):
        propagate_guide(left, LAYERS, "nearest")


def test_feathering_is_soft_and_keeps_a_partition_of_unity():
    left, right = _halves(64, 40)
    fl, fr = feather_guide(left, 3.0), feather_guide(right, 3.0)
    assert torch.allclose(fl + fr, torch.ones_like(fl), atol=1e-6)
    row = fl[0, 0, 20]
    assert 0.1 < float(row[31]) < 0.9 and 0.1 < float(row[32]) < 0.9
    assert float(row[0]) == pytest.approx(1.0) and float(row[-1]) == pytest.approx(0.0, abs=1e-6)
    assert torch.equal(feather_guide(left, 0.0), left)
    assert torch.allclose(background_guide([fl]), fr, atol=1e-6)


def test_label_images_make_disjoint_regions(tmp_path, starry):
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[:, :10] = (255, 0, 0)
    arr[:, 10:20] = (0, 250, 3)  # near green: within tolerance
    arr[:, 20:] = (40, 40, 200)  # listed nowhere
    path = tmp_path / "labels.png"
    Image.fromarray(arr).save(path)
    masks = label_guides(load_image(path).rgb, [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)])
    assert [float(m.sum()) for m in masks] == [200.0, 200.0]
    assert float((masks[0] * masks[1]).sum()) == 0
    regions = regions_from_labels(
        path, {"#ff0000": starry, "lime": None}, weights={"#ff0000": 3.0}, feather=0
    )
    assert regions[0].styled and not regions[1].styled and regions[0].weight == 3.0
    with pytest.raises(SettingsError, match="matches no pixel"):
        regions_from_labels(path, {"#ffffff": starry})
    with pytest.raises(SettingsError, match="unknown colour"):
        parse_label_style("#gg0000=none")


def test_region_syntax():
    r = parse_region("sky.png=example:starry_night:2.5")
    assert r.weight == 2.5 and str(r.style.image).endswith("starry_night.jpg")
    assert r.name == "sky.png"
    r = parse_region("a.png=example:great_wave")
    assert r.weight == 1.0 and str(r.style.image).endswith("great_wave.jpg")
    assert not parse_region("a.png=none").styled
    assert parse_label_style("#00ff00=none") == ("#00ff00", None, 1.0)
    with pytest.raises(SettingsError, match="a weight on an unstyled region has no effect"):
        parse_label_style("#00ff00=none:2")
    for bad in ("a.png", "=x.jpg"):
        with pytest.raises(SettingsError, match="MASK=STYLE"):
            parse_region(bad)
    with pytest.raises(SettingsError, match="region weight"):
        parse_region("a.png=b.jpg:0")


def test_labels_end_to_end_through_the_cli(tmp_path, photo, starry, capsys):
    w, h = photo.size
    photo.save(tmp_path / "photo.png")
    starry.save(tmp_path / "starry.png")
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[:, w // 2 :] = (0, 0, 255)
    Image.fromarray(arr).save(tmp_path / "labels.png")
    out = tmp_path / "out.png"
    rc = main(
        [
            str(tmp_path / "photo.png"),
            "--labels",
            str(tmp_path / "labels.png"),
            "--label-style",
            f"#ff0000={tmp_path / 'starry.png'}:2",
            "--label-style",
            "blue=none",
            "--init",
            "content",
            "--size",
            "64",
            "--iterations",
            "12",
            "--seed",
            "0",
            "-q",
            "-o",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    res = load_image(out).rgb
    content = resize(_t(photo), (res.shape[-1], res.shape[-2]))
    diff = (res - content).abs().mean(dim=1)[0]
    ow = res.shape[-1]
    assert diff[:, ow // 2 + 8 :].mean() < 0.5 * diff[:, : ow // 2 - 8].mean()
    # and a mask of the wrong shape is refused in one line
    Image.fromarray(arr[:10]).save(tmp_path / "wide.png")
    wide = f"{tmp_path / 'wide.png'}={tmp_path / 'starry.png'}"
    rc = main([str(tmp_path / "photo.png"), "--region", wide, "-o", str(out)])
    assert rc == 2 and "aspect ratio" in capsys.readouterr().err
    rc = main([str(tmp_path / "photo.png"), "-o", str(out)])
    assert rc == 2 and "at least one style" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# 3. several styles, 4. scale control


def test_blend_weights_interpolate_targets(photo, starry, wave, encoder):
    a = resize(_t(starry), fit_long_side(starry.size, 48))
    b = resize(_t(wave), fit_long_side(wave.size, 48))
    ga, gb = style_grams(encoder, a, LAYERS), style_grams(encoder, b, LAYERS)
    only_a = compute_targets(encoder, None, (), [a, b], LAYERS, [1.0, 0.0]).grams
    mix = compute_targets(encoder, None, (), [a, b], LAYERS, [1.0, 3.0]).grams
    for layer in LAYERS:
        assert torch.allclose(only_a[layer], ga[layer])
        assert torch.allclose(mix[layer], 0.25 * ga[layer] + 0.75 * gb[layer], rtol=1e-5)
        assert not torch.allclose(ga[layer], gb[layer], rtol=0.05)


def test_engine_passes_blend_and_per_style_scale(photo, starry, wave, spy):
    # direct convolutions, as the reference encoder below runs them
    s = FAST.replace(iterations=0, init="content", size=64, conv="direct")
    styles = [StyleInput(starry, weight=1.0, scale=0.5), StyleInput(wave, weight=3.0)]
    Stylizer(s).run(photo, styles)
    args = spy[0]["args"]
    used_a, used_b = args[3]
    assert args[5] == [1.0, 3.0]
    assert max(used_a.shape[-2:]) == 32 and max(used_b.shape[-2:]) == 64
    # the targets are those of the style resized by its scale, blended 1:3
    enc = load_encoder("avg", last="relu5_1")
    ga = style_grams(enc, resize(_t(starry), fit_long_side(starry.size, 32)), LAYERS)
    gb = style_grams(enc, resize(_t(wave), fit_long_side(wave.size, 64)), LAYERS)
    got = spy[0]["targets"].grams
    for layer in LAYERS:
        assert torch.allclose(got[layer], 0.25 * ga[layer] + 0.75 * gb[layer], rtol=1e-4)
    # and the scale changes them: texture statistics of a smaller painting differ
    ga1 = style_grams(enc, resize(_t(starry), fit_long_side(starry.size, 64)), LAYERS)
    assert not torch.allclose(ga["relu3_1"], ga1["relu3_1"], rtol=0.05)


def test_coarse_fine_layer_sets(starry, wave, encoder):
    a = resize(_t(starry), fit_long_side(starry.size, 48))
    b = resize(_t(wave), fit_long_side(wave.size, 48))
    ga, gb = style_grams(encoder, a, LAYERS), style_grams(encoder, b, LAYERS)
    fine, coarse = ("relu1_1", "relu2_1", "relu3_1"), ("relu3_1", "relu4_1", "relu5_1")
    g = blended_grams(encoder, [a, b], LAYERS, [1.0, 1.0], [fine, coarse])
    assert torch.allclose(g["relu1_1"], ga["relu1_1"]) and torch.allclose(
        g["relu2_1"], ga["relu2_1"]
    )
    assert torch.allclose(g["relu4_1"], gb["relu4_1"]) and torch.allclose(
        g["relu5_1"], gb["relu5_1"]
    )
    assert torch.allclose(g["relu3_1"], 0.5 * (ga["relu3_1"] + gb["relu3_1"]), rtol=1e-5)
    g = blended_grams(encoder, [a, b], LAYERS, None, [("relu1_1",), ("relu1_1",)])
    assert set(g) == {"relu1_1"}  # layers no painting covers get no target


def test_coarse_fine_end_to_end(tmp_path, photo, starry, wave, spy, capsys):
    s = FAST.replace(iterations=0, init="content")
    Stylizer(s).run(
        photo,
        [StyleInput(starry, layers=("relu1_1", "relu2_1")), StyleInput(wave, layers=LAYERS[2:])],
    )
    got = spy[0]["targets"].grams
    a, b = spy[0]["args"][3]
    enc = load_encoder("avg", last="relu5_1")
    assert torch.allclose(got["relu1_1"], style_grams(enc, a, ["relu1_1"])["relu1_1"])
    assert torch.allclose(got["relu5_1"], style_grams(enc, b, ["relu5_1"])["relu5_1"])
    with pytest.raises(SettingsError, match="not among the style layers"):
        Stylizer(s, style_layers=("relu1_1",)).run(photo, [StyleInput(starry, layers=("relu2_1",))])
    photo.save(tmp_path / "p.png")
    out = tmp_path / "o.png"
    common = [str(tmp_path / "p.png"), "example:starry_night", "example:great_wave"]
    fast = ["--size", "32", "--iterations", "2", "--seed", "0", "-q", "-o", str(out)]
    rc = main([*common, "--style-layers-of", "1=relu1_1,relu2_1", *fast])
    assert rc == 0, capsys.readouterr().err
    first, second = spy[-1]["kwargs"]["style_layer_sets"]
    assert first == ("relu1_1", "relu2_1") and second is None
    rc = main([*common, "--style-layers-of", "3=relu1_1", *fast])
    assert rc == 2 and "--style-layers-of" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# 5. output fidelity, end to end through the CLI


def _bgr_profile() -> bytes:
    """A non-sRGB RGB profile: sRGB with the red and blue colorants swapped (so converting a
    file tagged with it to sRGB swaps its first and third channels)."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", data[128:132])[0]
    tags = {bytes(data[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    r, b = tags[b"rXYZ"], tags[b"bXYZ"]
    data[r + 4 : r + 12], data[b + 4 : b + 12] = data[b + 4 : b + 12], data[r + 4 : r + 12]
    at = bytes(data).index("sRGB".encode("utf-16-be"))
    data[at : at + 8] = "sBGR".encode("utf-16-be")
    return bytes(data)


def _stylize(tmp_path, content, *extra) -> int:
    return main([str(content), "example:starry_night", "--seed", "0", "-q", *map(str, extra)])


def test_alpha_is_restored(tmp_path):
    w, h = 48, 32
    rng = np.random.default_rng(0)
    rgba = np.concatenate(
        [
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))[..., None],
        ],
        axis=-1,
    )
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert _stylize(tmp_path, tmp_path / "in.png", "--size", 48, "--iterations", 3, "-o", out) == 0
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        alpha = np.asarray(im)[..., 3]
    assert np.array_equal(alpha, rgba[..., 3])  # same size: restored exactly
    # at another size: the resized input alpha, to the 8-bit level
    assert _stylize(tmp_path, tmp_path / "in.png", "--size", 36, "--iterations", 2, "-o", out) == 0
    src = load_image(tmp_path / "in.png").alpha
    want = (resize(src, (36, 24))[0, 0].numpy() * 255).round()
    with Image.open(out) as im:
        got = np.asarray(im)[..., 3].astype(float)
    assert np.abs(got - want).max() <= 1


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16_bit_output(tmp_path, ext):
    out = tmp_path / f"out{ext}"
    content = examples.path("chelsea")
    args = ["--size", 64, "--iterations", 3, "--bits", 16, "-o", out]
    assert _stylize(tmp_path, content, *args) == 0
    img = load_image(out)
    assert img.bits == 16
    levels = torch.unique((img.rgb * 65535).round())
    assert levels.numel() > 256
    assert not torch.allclose(img.rgb * 255, (img.rgb * 255).round(), atol=1e-3)


def test_icc_input_converted_and_output_tagged_srgb(tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
    arr[:, :12] = (255, 0, 0)  # blue, under the BGR profile
    Image.fromarray(arr).save(tmp_path / "bgr.png", icc_profile=_bgr_profile())
    out = tmp_path / "out.png"
    args = ["--size", 36, "--iterations", 0, "--init", "content", "-o", out]
    assert _stylize(tmp_path, tmp_path / "bgr.png", *args) == 0
    with Image.open(out) as im:
        got = np.asarray(im.convert("RGB")).astype(int)
        icc = im.info.get("icc_profile")
    assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    assert np.abs(got[:, :12] - np.array([0, 0, 255])).max() <= 2
    assert np.abs(got - arr[..., ::-1].astype(int)).max() <= 3  # channels swapped into sRGB


def test_run_cache_reuses_targets_across_weights(photo, starry):
    cache = RunCache(style_layers=LAYERS)
    a = Stylizer(FAST, iterations=2).run(photo, starry, cache=cache)
    b = Stylizer(FAST, iterations=2, style_weight=10.0, style_layers=("relu1_1",)).run(
        photo, starry, cache=cache
    )
    # content features and style Grams: each computed once, reused by the second run
    assert cache.stats["targets_computed"] == 2 and cache.stats["targets_reused"] == 2
    assert cache.stats["encoders_built"] == 1 and cache.stats["images_loaded"] == 2
    assert not torch.equal(a.image, b.image)
    fresh = Stylizer(FAST, iterations=2, style_weight=10.0, style_layers=("relu1_1",)).run(
        photo, starry
    )
    assert torch.allclose(fresh.image, b.image, atol=1e-5)  # reuse changes nothing
