#!/usr/bin/env bash
# Installs what the web studio's browser test (tests/test_web_e2e.py) needs: Debian's Chromium
# and Playwright for Python. Playwright drives /usr/bin/chromium; `playwright install` (which
# downloads its own browser builds) is deliberately not run.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ! -x /usr/bin/chromium ]; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium fonts-liberation
fi
/usr/bin/chromium --version 2>/dev/null || true

python -m pip install --quiet "playwright>=1.40"
python -c 'import playwright.sync_api' && echo 'playwright: ok'
