"""Winograd convolutions (NNPACK): the same features and input gradients as oneDNN's direct
convolutions, taken only where they pay, resolved from the user's choice, counted in the memory
plan, and the same painting end to end."""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.profiler import profile

from impasto import Settings, Stylizer
from impasto.cli import main
from impasto.encoder import load_encoder
from impasto.encoder import winograd as wg
from impasto.errors import SettingsError
from impasto.examples import path
from impasto.memory import plan_memory, winograd_bytes_per_pixel

needs_nnpack = pytest.mark.skipif(not wg.available(), reason="this torch or CPU has no NNPACK")
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")
BLOCK1 = ("relu1_2",)
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def pool_threads():
    """Run with as many torch threads as NNPACK's pool has, if an earlier test created it."""
    before = torch.get_num_threads()
    torch.set_num_threads(wg._state["threads"] or before)
    yield
    torch.set_num_threads(before)


def _nnpack_calls(fn) -> int:
    with profile() as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_nnpack_spatial_convolution")


def _features_and_grad(enc, x, layers=LAYERS):
    x = x.clone().requires_grad_(True)
    feats = enc(x, layers)
    loss = sum((f.float() ** 2).mean() for f in feats.values())
    loss.backward()
    return {k: v.detach() for k, v in feats.items()}, x.grad


@pytest.fixture(scope="module")
def encoders():
    direct = load_encoder("max", last="relu5_1")
    return direct, load_encoder("max", last="relu5_1", winograd=True)


@needs_nnpack
def test_same_features_and_input_gradient_as_direct(encoders):
    direct, fast = encoders
    x = torch.rand(1, 3, 256, 384, generator=torch.Generator().manual_seed(0))
    want, want_grad = _features_and_grad(direct, x)
    got, got_grad = _features_and_grad(fast, x)
    for layer in LAYERS:
        err = (got[layer] - want[layer]).norm() / want[layer].norm()
        assert err < 1e-4, layer
    assert (got_grad - want_grad).norm() / want_grad.norm() < 2e-3
    # and Winograd did run, forward and backward, on the 7 convolutions with enough work: conv1_2
    # (64 x 64 channels x 98304 px), blocks 2 and 3; not conv1_1 (3 channels in), and not
    # blocks 4-5 (32 x 48 px maps and smaller, below MIN_PIXELS)
    assert _nnpack_calls(lambda: _features_and_grad(fast, x)) == 14
    assert _nnpack_calls(lambda: _features_and_grad(direct, x)) == 0


@needs_nnpack
def test_small_work_and_trainable_weights_take_the_direct_convolution():
    enc = load_encoder("max", last="relu1_2", winograd=True)
    x = torch.rand(1, 3, 192, 256)  # conv1_2: 64 x 64 x 49152 = 201e6 >= MIN_WORK
    assert _nnpack_calls(lambda: _features_and_grad(enc, x, BLOCK1)) == 2
    small = torch.rand(1, 3, 96, 128)  # 50e6 < MIN_WORK
    assert _nnpack_calls(lambda: _features_and_grad(enc, small, BLOCK1)) == 0
    enc.requires_grad_(True)  # training: the weights need their gradient, which NNPACK lacks
    assert _nnpack_calls(lambda: _features_and_grad(enc, x, BLOCK1)) == 0
    assert enc.convs["conv1_1"].weight.grad is not None


@needs_nnpack
def test_another_thread_count_than_the_pool_s_takes_the_direct_convolution():
    enc = load_encoder("max", last="relu1_2", winograd=True)
    x = torch.rand(1, 3, 192, 256)
    # the first call fixes the pool's threads
    assert _nnpack_calls(lambda: _features_and_grad(enc, x, BLOCK1)) == 2
    before = torch.get_num_threads()
    torch.set_num_threads(before + 1)
    try:
        assert _nnpack_calls(lambda: _features_and_grad(enc, x, BLOCK1)) == 0
    finally:
        torch.set_num_threads(before)


def test_resolving_the_choice():
    assert wg.resolve_winograd("direct", CPU, torch.float32) is False
    assert wg.resolve_winograd("auto", CPU, torch.bfloat16) is False
    assert wg.resolve_winograd("auto", torch.device("cuda"), torch.float32) is False
    avx2 = torch.backends.cpu.get_cpu_capability() == "AVX2"
    assert wg.resolve_winograd("auto", CPU, torch.float32) is (avx2 and wg.available())
    # each refusal is headed by the setting to change, named as the library names it
    for device, dtype, says in [
        (CPU, torch.bfloat16, "precision: bf16 cannot run 'winograd' convolutions (fp32 only)"),
        (torch.device("cuda"), torch.float32, "conv: 'winograd' runs on the CPU only"),
    ]:
        with pytest.raises(SettingsError, match=re.escape(says)):
            wg.resolve_winograd("winograd", device, dtype)
    with pytest.raises(SettingsError, match="conv must be one of auto, direct, winograd"):
        wg.resolve_winograd("fft", CPU, torch.float32)


def test_the_cli_refuses_winograd_where_it_cannot_run(capsys, tmp_path):
    out = tmp_path / "out.png"
    argv = ["example:chelsea", "example:starry_night", "-o", str(out), "--size", "64"]
    rc = main([*argv, "--conv", "winograd", "--precision", "bf16", "--iterations", "1"])
    err = capsys.readouterr().err
    # the CLI names the flag to change
    assert rc == 2 and "error: --precision: bf16 cannot run 'winograd'" in err
    assert err.count("\n") == 1
    assert not out.exists()
    assert main([*argv, "--conv", "fft"]) == 2


@needs_nnpack
def test_asking_for_winograd_with_auto_precision_runs_in_fp32(tmp_path):
    """On a CPU with native bf16, ``--conv winograd`` with the default precision was refused
    ("needs fp32"): auto picked bf16. An explicit Winograd makes auto mean fp32."""
    assert Settings(conv="winograd").network_precision == "fp32"
    assert Settings(conv="winograd", precision="bf16").network_precision == "bf16"
    assert Settings().network_precision == "auto"
    out = tmp_path / "out.png"
    argv = ["example:chelsea", "example:starry_night", "-o", str(out), "--size", "64"]
    assert main([*argv, "--conv", "winograd", "--iterations", "1", "-q"]) == 0 and out.exists()


def test_memory_plan_counts_the_workspace():
    # VGG19 to relu5_1: conv1_2 (64 -> 64 channels, full size) needs the most
    assert winograd_bytes_per_pixel("relu5_1") == pytest.approx(128 * 4 * 64 / 36)
    assert winograd_bytes_per_pixel("relu1_1") == pytest.approx(67 * 4 * 64 / 36)
    kw = dict(layers=LAYERS, pooling="max", dtype=torch.float32, optimizer="lbfgs", history=20)
    kw.update(budget=1 << 40, halo=0, align=16)
    plain = plan_memory((512, 768), **kw)
    fast = plan_memory((512, 768), winograd=True, **kw)
    assert fast.estimate - plain.estimate == pytest.approx(512 * 768 * 128 * 4 * 64 / 36, rel=1e-3)


@needs_nnpack
def test_the_workspace_estimate_holds():
    """NNPACK keeps its workspace after the call; the retained memory is what the model says."""
    code = textwrap.dedent(
        """
        import torch
        from impasto.encoder import winograd as wg
        rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096
        assert wg.available()
        x, w = torch.randn(1, 64, 384, 512), torch.randn(64, 64, 3, 3)
        before = rss()
        y = wg._winograd(x, w, None)
        del y
        print((rss() - before) / wg.workspace_bytes(64, 64, 384 * 512))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 0.8 < float(out.stdout) <= 1.05


@needs_nnpack
def test_the_same_painting_end_to_end_and_deterministic():
    # 256 px: conv1_2 and blocks 2-3 have enough work for Winograd
    base = Settings(size=256, iterations=6, pyramid_start=0, seed=5, device="cpu")
    base = base.replace(precision="fp32")
    runs = {
        conv: Stylizer(base.replace(conv=conv)).run(
            str(path("chelsea")), [str(path("starry_night"))]
        )
        for conv in ("direct", "winograd")
    }
    again = Stylizer(base.replace(conv="winograd")).run(
        str(path("chelsea")), [str(path("starry_night"))]
    )
    a, b = (np.asarray(runs[c].image) for c in ("direct", "winograd"))
    assert np.array_equal(np.asarray(again.image), b)  # Winograd is deterministic
    assert not np.array_equal(a, b)  # (it did run)
    assert np.abs(a - b).mean() < 0.01  # and paints the same picture (pixels in [0, 1])
    la, lb = (runs[c].history[-1]["loss"] for c in ("direct", "winograd"))
    assert lb == pytest.approx(la, rel=0.05)
