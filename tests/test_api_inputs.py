"""The Python API as a library user drives it: what an exploratory user found (each a crash, a
bare TypeError from deep inside, or a silently wrong result), now a clear impasto error or the
right result. Runs are tiny (48 px, one or two iterations, a random-weight VGG19)."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto import RunCache, Settings, Stylizer, examples
from impasto.batch import BatchOptions, expand_inputs, run_batch
from impasto.encoder.weights import save_weights
from impasto.errors import Cancelled, ImageError, ImpastoError, SettingsError
from impasto.regions import Region, regions_from_labels
from tests._tiny_vgg import SPEC, tiny_state_dict

C, S = "example:chelsea", "example:starry_night"  # chelsea is 451 x 300


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    save_weights(path, tiny_state_dict(), SPEC)
    return Settings(size=48, iterations=2, pyramid_start=0, seed=1, weights=str(path))


def _left_half() -> torch.Tensor:
    mask = torch.zeros(300, 451)
    mask[:, :225] = 1
    return mask


def test_histogram_reverse_with_regions_only_runs(base):
    """An IndexError: the cache key took the first global painting, and there was none."""
    s = base.replace(preserve_colors="histogram-reverse")
    result = Stylizer(s).run(C, (), regions=[Region(_left_half(), S)])
    assert result.image.shape == (1, 3, 32, 48)


def test_checkpoint_and_resume_take_example_inputs(base, tmp_path):
    """run() took example:NAME, its checkpoint could not identify it (no such file)."""
    s = base.replace(iterations=4)
    whole = Stylizer(s).run(C, S).image

    def stop(it):
        if it.step == 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        Stylizer(s).run(C, S, checkpoint=tmp_path / "run.ckpt", callback=stop)
    resumed = Stylizer(s).run(C, S, resume=tmp_path / "run.ckpt").image
    assert torch.equal(whole, resumed)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (dict(content_layers=("relu4_2", "relu4_2")), "layer relu4_2 is listed twice"),
        (dict(style_layers=("relu1_1", "relu2_1", "relu1_1")), "layer relu1_1 is listed twice"),
        (dict(content_layer_weights=(0,)), "content_layer_weights: all 0"),
        (dict(style_layer_weights=(0,) * 5), "style_layer_weights: all 0"),
    ],
)
def test_repeated_layers_and_all_zero_weights_are_refused(change, words):
    """A repeated layer halved its weight (or dropped the term: weights 1, 0); all-zero layer
    weights turned a term off although alpha = beta = 0 is refused as nothing to optimise."""
    with pytest.raises(SettingsError, match=words):
        Settings(**change)


def test_a_shared_cache_keeps_the_pixel_limit(base):
    cache = RunCache()
    Stylizer(base).run(C, S, cache=cache)
    with pytest.raises(ImageError, match="too large"):
        Stylizer(base.replace(max_input_pixels=10)).run(C, S, cache=cache)


@pytest.mark.parametrize(
    ("mask", "words"),
    [
        (torch.zeros(300, 451), "covers no pixel"),
        (torch.full((300, 451), float("nan")), "NaN or infinite"),
        (torch.zeros(0, 0), "must be shaped"),
    ],
)
def test_a_mask_that_selects_nothing_is_refused(base, mask, words):
    """An all-zero or NaN mask removed the region's style without a word; 0x0 divided by 0."""
    with pytest.raises(ImpastoError, match=words):
        Stylizer(base).run(C, (), regions=[Region(mask, S)])


def _png_bytes() -> bytes:
    return examples.path("chelsea").read_bytes()


@pytest.mark.parametrize(
    ("content", "styles", "words"),
    [
        (_png_bytes, S, "not bytes of image data; open it with PIL.Image.open(io.BytesIO(data))"),
        (lambda: torch.rand(1, 3, 8, 8), S, "not Tensor; convert"),
        (lambda: np.zeros((8, 8, 3)), S, "not ndarray; convert an array with PIL.Image.fromarray"),
        (lambda: io.BytesIO(_png_bytes()), S, "not BytesIO"),
        (lambda: C, 5, "a style must be a path, example:NAME or a PIL image, not int"),
        (lambda: C, torch.rand(1, 3, 8, 8), "a style must be a path"),
        (lambda: C, [torch.rand(1, 3, 8, 8)], "a style image must be a path"),
    ],
)
def test_inputs_of_other_kinds_are_one_clear_line(base, content, styles, words):
    """A bare TypeError from the path helpers; image bytes gave a 230,000-character 'line'."""
    with pytest.raises(ImageError) as info:
        Stylizer(base).run(content(), styles)
    message = str(info.value)
    assert words in message and "\n" not in message and len(message) < 300


def test_results_are_saved_to_paths_only(base, tmp_path):
    result = Stylizer(base).run(C, S)
    with pytest.raises(ImageError, match="an output must be a file path, not BytesIO"):
        result.save(io.BytesIO())


def test_settings_that_are_not_settings_and_odd_arguments(base):
    with pytest.raises(SettingsError, match="settings must be an impasto.Settings"):
        Stylizer({"size": 48})
    with pytest.raises(SettingsError, match="settings must be an impasto.Settings"):
        impasto.stylize(C, S, {"size": 48})
    with pytest.raises(SettingsError, match="settings keys must be names"):
        Settings.from_dict({1: 2})
    from pathlib import Path

    assert Settings(weights=Path("w.pth"), init=Path("start.png")).weights == "w.pth"
    with pytest.raises(SettingsError, match="callback must be callable"):
        Stylizer(base).run(C, S, callback=5)
    with pytest.raises(SettingsError, match="cancel must be a threading.Event"):
        Stylizer(base).run(C, S, cancel=True)
    event = threading.Event()
    event.set()
    with pytest.raises(Cancelled):
        Stylizer(base).run(C, S, cancel=event)


def test_reconstructions_take_their_layers_as_users_write_them(base):
    one = impasto.reconstruct_style(S, "relu1_1", base)  # was split into 'r', 'e', 'l', ...
    assert one.settings.style_layers == ("relu1_1",)
    two = impasto.reconstruct_style(S, "relu1_1,relu2_1", base)
    assert two.settings.style_layers == ("relu1_1", "relu2_1")
    with pytest.raises(SettingsError, match="give one or more style layer names"):
        impasto.reconstruct_style(S, None, base)
    with pytest.raises(SettingsError, match="takes one image"):
        impasto.reconstruct_style([S, "example:great_wave"], ["relu1_1"], base)
    with pytest.raises(SettingsError, match="one layer name such as 'relu4_2'"):
        impasto.reconstruct_content(C, ["relu1_1", "relu2_1"], base)
    # a fixed choice given in the settings ran from noise without a word
    with pytest.raises(SettingsError, match="a reconstruction sets init itself"):
        impasto.reconstruct_content(C, "relu1_1", base.replace(init="content"))
    with pytest.raises(SettingsError, match="sets preserve_colors itself"):
        impasto.reconstruct_style(S, "relu1_1", base.replace(preserve_colors="luminance"))


def test_region_and_label_arguments(tmp_path):
    for bad in (dict(weight="1"), dict(weight=None), dict(feather="0.1")):
        with pytest.raises(SettingsError, match="region (weight|feather) must be"):
            Region(_left_half(), S, **bad)
    labels = tmp_path / "labels.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(labels)
    with pytest.raises(SettingsError, match=r"label colour \(255, 0, 0\): give three numbers"):
        regions_from_labels(labels, {(255, 0, 0): S})
    assert len(regions_from_labels(labels, {(1.0, 0.0, 0.0): S})) == 1


def test_batch_inputs_and_options_from_python(tmp_path, base):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(photo)
    assert expand_inputs(str(photo), "contents") == [str(photo)]  # not letter by letter
    assert expand_inputs([photo], "contents") == [str(photo)]  # a Path
    for bad in (dict(workers=0), dict(workers=-1), dict(threads=-1), dict(threads=1.5)):
        with pytest.raises(SettingsError, match="(workers|threads) must be"):
            run_batch([], str(tmp_path / "out"), BatchOptions(**bad))


def test_a_region_too_small_for_every_style_layer_is_refused_before_any_work(base):
    """A region smaller than the layers' receptive fields (--guide-propagation inside) had no
    style term at all, without a word; the same with 'area' when it is below one position."""
    tiny = torch.zeros(300, 451)
    tiny[150:160, 200:210] = 1  # about 1 px at 48 px wide
    seen = []
    for how in ("inside", "area"):
        with pytest.raises(SettingsError, match=f"reaches no position of any style layer at 48x32 "
                           f"with guide_propagation '{how}'"):  # fmt: skip
            Stylizer(base.replace(guide_propagation=how)).run(
                C, (), regions=[Region(tiny, S)], callback=seen.append
            )
    assert seen == []
    wide = torch.zeros(300, 451)
    wide[:, :150] = 1
    Stylizer(base.replace(guide_propagation="inside")).run(C, (), regions=[Region(wide, S)])
