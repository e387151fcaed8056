#!/usr/bin/env bash
# Installs everything (venv, requirements, Debian's chromium) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
exec .venv/bin/python -m pytest "$@"
