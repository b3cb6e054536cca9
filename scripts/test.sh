#!/usr/bin/env bash
# Set up (or reuse) .venv with mlfort and its test tools, then run the whole test suite, slow tests included.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
