#!/usr/bin/env bash
# Install what the book's headless-browser test (tests/test_book_browser.py) needs:
#   * Chromium from the distribution at /usr/bin/chromium (apt-get; we run as root, in CI too);
#   * the Python `playwright` package in the project venv.
# Idempotent: does nothing that is already done. It never runs `playwright install` (that downloads
# browsers from the network at test time); the test launches the system Chromium instead.
#
# Usage: tools/install_browser.sh            (VENV=.venv by default)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "chromium: already installed at $CHROMIUM"
else
    if [ "$(id -u)" -ne 0 ]; then
        SUDO=sudo
    else
        SUDO=
    fi
    echo "chromium: installing with apt-get"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
    test -x "$CHROMIUM" || { echo "chromium: $CHROMIUM still missing after apt-get" >&2; exit 1; }
fi
"$CHROMIUM" --version 2>/dev/null || true

if [ ! -x "$VENV/bin/python" ]; then
    echo "no venv at $VENV (run 'make venv' first)" >&2
    exit 1
fi
if "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
    echo "playwright: already in $VENV"
else
    echo "playwright: installing into $VENV"
    "$VENV/bin/python" -m pip install -q playwright
fi
