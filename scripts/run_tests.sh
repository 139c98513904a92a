#!/usr/bin/env bash
# One command, fresh clone to test results: set up .venv with the dev extra, lint, run the test suite.
# Tests read real data from ../shared/data (override with FERKIT_DATA=/path/to/data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev
.venv/bin/ruff check src tests benchmarks scripts
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
