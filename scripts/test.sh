#!/usr/bin/env bash
# The project's checks, as CI runs them (after scripts/setup.sh): ruff, the whole suite, then the engine and analysis
# tests again under another CPU setting (torch's portable kernels, one thread), so that a test which holds only for
# one machine's float rounding fails here rather than on a reviewer's CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check fra scripts tests
.venv/bin/python -m pytest -q
ATEN_CPU_CAPABILITY=default FRA_TEST_THREADS=1 .venv/bin/python -m pytest -q tests/engine tests/analysis
