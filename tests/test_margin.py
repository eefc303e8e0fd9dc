"""The margin: extra canvas around the image at every scale, optimised with it and cropped from
the result (pad and crop, carrying a result with its margin to the next scale, and whole runs
with a margin: sizes, previews, checkpoints, tiles, regions, colour modes, the CLI)."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from impasto import Settings, Stylizer
from impasto.checkpoint import load_checkpoint
from impasto.cli import main
from impasto.encoder.weights import save_weights
from impasto.errors import Cancelled, CheckpointError
from impasto.image import crop_edges, pad_edges, read_metadata, resize
from impasto.pyramid import carry
from impasto.regions import Region
from impasto.schedule import Scale, plan_scales
from tests._tiny_vgg import SPEC, tiny_state_dict


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    save_weights(path, tiny_state_dict(), SPEC)
    return str(path)


def run_settings(weights, **kw):
    base = dict(
        size=64, iterations=5, pyramid_start=32, pyramid_iterations=4, seed=3, device="cpu",
        precision="fp32", weights=weights, margin=4,
    )  # fmt: skip
    return Settings(**{**base, **kw})


# ------------------------------------------------------------------------------------------
# pad, crop, carry


@given(
    h=st.integers(1, 24),
    w=st.integers(1, 24),
    m=st.integers(0, 30),
    mode=st.sampled_from(["reflect", "replicate"]),
)
@settings(max_examples=60, deadline=None)
def test_crop_undoes_pad(h, w, m, mode):
    x = torch.rand(1, 3, h, w)
    padded = pad_edges(x, m, mode)
    assert padded.shape[-2:] == (h + 2 * m, w + 2 * m)
    assert torch.equal(crop_edges(padded, m), x)


def test_pad_mirrors_without_repeating_the_edge_and_falls_back_to_repeating():
    row = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]]).expand(1, 1, 4, 4)
    assert pad_edges(row, 2)[0, 0, 2].tolist() == [3, 2, 1, 2, 3, 4, 3, 2]
    assert pad_edges(row, 5)[0, 0, 5].tolist() == [1] * 5 + [1, 2, 3, 4] + [4] * 5
    assert pad_edges(row, 0) is row


def test_plan_scales_give_every_scale_the_margin():
    scales = plan_scales((400, 300), 512, 100, 128, 50, margin=3)
    assert [(s.size, s.canvas) for s in scales] == [
        ((128, 96), (134, 102)),
        ((256, 192), (262, 198)),
        ((512, 384), (518, 390)),
    ]
    assert all(s.margin == 0 for s in plan_scales((400, 300), 512, 100, 128, 50))


def test_carry_without_margins_is_a_resize():
    x = torch.rand(1, 3, 24, 32)
    assert torch.equal(carry(x, Scale((32, 24), 1), Scale((64, 48), 1)), resize(x, (64, 48)))


def test_carry_lands_the_image_on_the_image():
    """Twice the size with the same margin: away from the edges, the carried image is the
    resized image (the margin only adds pixels around it)."""
    old, new = Scale((32, 24), 1, 2), Scale((64, 48), 1, 2)
    x = torch.rand(1, 3, *old.canvas[::-1])
    out = carry(x, old, new)
    assert out.shape[-2:] == new.canvas[::-1]
    inner = crop_edges(out, new.margin)
    plain = resize(crop_edges(x, old.margin), new.size)
    assert torch.allclose(crop_edges(inner, 4), crop_edges(plain, 4), atol=1e-5)


@given(
    w=st.integers(8, 60),
    h=st.integers(8, 60),
    factor=st.floats(1.0, 3.0),
    m_old=st.integers(0, 8),
    m_new=st.integers(0, 12),
)
@settings(max_examples=60, deadline=None)
def test_carry_gives_the_new_canvas(w, h, factor, m_old, m_new):
    old = Scale((w, h), 1, m_old)
    new = Scale((max(1, round(w * factor)), max(1, round(h * factor))), 1, m_new)
    x = torch.rand(1, 1, *old.canvas[::-1])
    assert carry(x, old, new).shape[-2:] == new.canvas[::-1]


# ------------------------------------------------------------------------------------------
# whole runs


def test_a_margin_changes_the_canvas_not_the_output(tiny_weights, content_path, style_path):
    seen = []
    s = run_settings(tiny_weights)
    result = Stylizer(s).run(content_path, [style_path], callback=lambda it: seen.append(it))
    plain = Stylizer(s.replace(margin=0)).run(content_path, [style_path])
    assert result.image.shape == plain.image.shape == (1, 3, 43, 64)
    assert {it.image.shape[-2:] for it in seen} == {(21, 32), (43, 64)}  # previews: no margin
    assert all(torch.isfinite(torch.tensor(it.loss)) for it in seen)
    assert not torch.equal(result.image, plain.image)


def test_a_margin_run_resumes_exactly_and_refuses_another_margin(
    tiny_weights, content_path, style_path, tmp_path
):
    s = run_settings(tiny_weights)
    straight = Stylizer(s).run(content_path, [style_path])
    ckpt = tmp_path / "run.ckpt"

    def stop(it):
        if it.step == 6:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        Stylizer(s).run(content_path, [style_path], callback=stop, checkpoint=ckpt)
    assert load_checkpoint(ckpt).settings["margin"] == 4
    with pytest.raises(CheckpointError, match="^margin: the checkpoint was made with 4, this run"):
        Stylizer(s.replace(margin=0)).run(content_path, [style_path], resume=ckpt)
    resumed = Stylizer(s).run(content_path, [style_path], resume=ckpt)
    assert torch.equal(resumed.image, straight.image)


def test_tiles_with_a_margin_match_the_whole_canvas(tiny_weights, content_path, style_path):
    whole = Stylizer(run_settings(tiny_weights)).run(content_path, [style_path])
    tiled = Stylizer(run_settings(tiny_weights, tile=32)).run(content_path, [style_path])
    assert tiled.history[0]["loss"] == pytest.approx(whole.history[0]["loss"], rel=1e-5)
    assert (tiled.image - whole.image).abs().max() < 1e-2
    assert [m["size"] for m in tiled.memory] == [[32, 21], [64, 43]]
    assert tiled.memory[1]["tile"] == 32


@pytest.mark.parametrize(
    "extra",
    [
        dict(init="content"),
        dict(init="style"),
        dict(preserve_colors="luminance"),
        dict(pyramid_start=0, margin=40),  # wider than the image is tall: edges repeated
    ],
)
def test_margin_with_each_start_and_colour_mode(extra, tiny_weights, content_path, style_path):
    out = Stylizer(run_settings(tiny_weights, **extra)).run(content_path, [style_path]).image
    assert out.shape == (1, 3, 43, 64) and torch.isfinite(out).all()


def test_margin_with_regions(tiny_weights, content_path, style_path):
    left = torch.zeros(1, 1, 43, 64)
    left[..., :32] = 1
    regions = [Region(left, style_path), Region(1 - left, None)]
    s = run_settings(tiny_weights, init="content")
    out = Stylizer(s).run(content_path, [], regions=regions).image
    assert out.shape == (1, 3, 43, 64) and torch.isfinite(out).all()


def test_cli_margin_is_recorded_and_checked(
    tiny_weights, content_path, style_path, tmp_path, capsys
):
    out = tmp_path / "o.png"
    common = [str(content_path), str(style_path), "--size", "48", "--iterations", "2"]
    common += ["--pyramid-start", "0", "--weights", tiny_weights, "--seed", "1"]
    assert main([*common, "-o", str(out), "--margin", "6"]) == 0
    assert json.loads(read_metadata(out)["impasto"])["settings"]["margin"] == 6
    assert main([*common, "-o", str(tmp_path / "bad.png"), "--margin", "-1"]) != 0
    assert "margin" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()
