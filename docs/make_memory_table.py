"""Print the README's memory-plan table: what :func:`impasto.memory.plan_memory` chooses for
print sizes and budgets (VGG19 to relu5_1, content relu4_2, L-BFGS history 20 asked). Pure
arithmetic, no run.

    python docs/make_memory_table.py
"""

from __future__ import annotations

import argparse

import torch

from impasto.errors import SettingsError
from impasto.layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from impasto.memory import plan_memory
from impasto.tiles import alignment, required_halo

SIZES = {
    "2048 × 2048": (2048, 2048),
    "4960 × 3508 (A3)": (3508, 4960),
    "7016 × 4961 (A2)": (4961, 7016),
    "8192 × 8192": (8192, 8192),
    "16384 × 16384": (16384, 16384),
}
# (column, budget in GB, network dtype, Winograd convolutions): the CPU columns are an AVX2 CPU's
# defaults (fp32, Winograd), the GPU columns bf16.
COLUMNS = [
    ("12 GB (fp32, CPU)", 12, torch.float32, True),
    ("24 GB (fp32, CPU)", 24, torch.float32, True),
    ("80 GB (bf16, GPU)", 80, torch.bfloat16, False),
    ("125 GB (bf16, H200)", 125, torch.bfloat16, False),
]


def cell(size: tuple[int, int], budget_gb: int, dtype: torch.dtype, winograd: bool) -> str:
    layers = tuple(dict.fromkeys([*DEFAULT_CONTENT_LAYERS, *DEFAULT_STYLE_LAYERS]))
    try:
        p = plan_memory(
            size,
            layers=layers,
            content_layers=DEFAULT_CONTENT_LAYERS,
            pooling="max",
            dtype=dtype,
            winograd=winograd,
            optimizer="lbfgs",
            history=20,
            budget=budget_gb * 10**9,
            halo=required_halo(layers),
            align=alignment(layers),
        )
    except SettingsError:
        return "does not fit"
    where = "whole" if p.tile is None else f"tiles {p.tile}"
    return where + (f", L-BFGS {p.history}" if p.optimizer == "lbfgs" else ", Adam")


def main(argv: list[str] | None = None) -> None:
    # no options: --help says what it prints (any other argument was ignored)
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    print("| output | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for label, size in SIZES.items():
        print(f"| {label} | " + " | ".join(cell(size, *c[1:]) for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
