"""Run a benchmark as on a CPU with fewer instructions: cap torch's kernels at an ISA.

On a CPU with AVX-512 BF16, ``--isa avx2`` makes torch take the code paths an AVX2-only CPU
takes: oneDNN's ``jit:avx2`` convolutions, ATen's AVX2 kernels and MKL's AVX2 ones. impasto's
``auto`` choices then follow, as there: fp32 arithmetic and Winograd convolutions. The clock,
caches and cores are still this CPU's, so the times are not an AVX2 CPU's; what carries over is
the ratio between two code versions or two settings measured side by side under the same cap.

The caps are environment variables read when torch loads its libraries: ``cap`` must run before
``import torch`` in this process, and every child started afterwards inherits them. As a command
it runs another under the caps (CI runs the tests of impasto's CPU choices this way, so that an
AVX2-only CPU's choices are tested whatever CPU CI has):

    python benchmarks/isa.py avx2 python -m pytest tests/test_winograd.py
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

CAPS: dict[str, dict[str, str]] = {
    "avx2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
}


def cap(isa: str | None) -> dict[str, str]:
    """Set the environment that caps torch at ``isa`` (``None``: nothing) and return it."""
    if isa is None:
        return {}
    if isa not in CAPS:
        raise SystemExit(f"unknown --isa {isa!r}; use {', '.join(CAPS)}")
    if "torch" in sys.modules:
        raise RuntimeError("isa.cap must run before torch is imported")
    os.environ.update(CAPS[isa])
    return dict(CAPS[isa])


def check(isa: str | None) -> str:
    """torch's CPU capability now, after checking it is the one ``isa`` asked for."""
    import torch

    found = torch.backends.cpu.get_cpu_capability()
    if isa is not None and found.lower() != isa.lower():
        raise SystemExit(f"--isa {isa}: torch runs {found} kernels (this CPU lacks {isa}?)")
    return found


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_flags() -> list[str]:
    """The CPU's AVX-512 / AMX / AVX2 flags: they decide whether bf16 is fast."""
    for line in _cpuinfo():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
    return []


def vector_summary(flags: list[str] | None = None) -> str:
    """The CPU's vector instructions in a few words, from its flags (this CPU's by default):
    ``AVX2, AVX-512 with BF16``, ``AVX2, no AVX-512``, ``AVX2, AVX-512 with BF16, AMX``..."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return "vector instructions unknown"
    parts = ["AVX2" if "avx2" in flags else "no AVX2"]
    if "avx512f" in flags:
        parts.append("AVX-512 with BF16" if "avx512_bf16" in flags else "AVX-512 without BF16")
    else:
        parts.append("no AVX-512")
    if any(f.startswith("amx") for f in flags):
        parts.append("AMX")
    return ", ".join(parts)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: how busy the machine is besides the benchmark."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else []


def machine(isa: str | None) -> dict:
    """What a benchmark ran on: the CPU (model, family, flags), the kernels torch took and the
    cap that made it take them, threads, torch."""
    import torch

    from impasto.devices import cpu_name

    family = [ln.split(":", 1)[1].strip() for ln in _cpuinfo() if ln.startswith("cpu family")]
    return {
        "platform": platform.platform(),
        "processor": cpu_name(),
        "cpu_family": family[0] if family else None,
        "cpu_flags": cpu_flags(),
        "vector_instructions": vector_summary(),
        "torch_cpu_capability": check(isa),
        "isa_cap": CAPS.get(isa) if isa else None,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    """``isa.py ISA COMMAND...``: replace this process with ``COMMAND`` under ``ISA``'s caps."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        raise SystemExit("usage: isa.py ISA COMMAND [ARG...]")
    cap(argv[0])
    try:
        os.execvp(argv[1], argv[1:])
    except OSError as e:
        raise SystemExit(f"cannot run {argv[1]}: {e.strerror}") from None


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.report
    from benchmarks import report

    report.main_guard(main)
