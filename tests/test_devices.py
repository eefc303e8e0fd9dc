import pytest
import torch

from impasto.devices import (
    available_devices,
    cpu_has_fast_bf16,
    cpu_name,
    resolve_device,
    resolve_dtype,
)
from impasto.errors import SettingsError


def test_auto_and_cpu_always_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto").type
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    assert auto == ("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")  # in order
    assert {"auto", "cpu"} <= set(available_devices())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_accelerator_is_a_one_line_settings_error():
    with pytest.raises(SettingsError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert "cuda" not in available_devices()


def test_unknown_names_list_the_choices():
    with pytest.raises(SettingsError, match="auto, cpu, cuda, mps"):
        resolve_device("tpu")
    with pytest.raises(SettingsError, match="auto, fp32, bf16, fp16"):
        resolve_dtype("int8", torch.device("cpu"))


def test_precision_on_the_cpu():
    cpu = torch.device("cpu")
    assert resolve_dtype("fp32", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(SettingsError, match="fp16 is not supported on the CPU"):
        resolve_dtype("fp16", cpu)
    # auto never assumes bf16: only where the CPU has native bf16 instructions.
    want = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    assert resolve_dtype("auto", cpu) == want


def test_cpu_name_is_the_model_name_line():
    from pathlib import Path

    name = cpu_name()
    assert name and name == name.strip()
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return
    if "model name" in info:
        assert f": {name}" in info
