#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run of under 8 minutes, ending with one summary:
#   the CUDA-marked tests (engine, channel search and sparse SAE step against the CPU; a GPT-2-shaped resolve),
#   fra bench --device cuda --batch 1 8 64 auto, and fra bench-channels --device cuda.
# Usage (after scripts/setup.sh): bash scripts/gpu_check.sh [OUT_DIR]   (logs go to OUT_DIR, default build/gpu_check)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/gpu_check}
mkdir -p "$out"
py=.venv/bin/python
if ! $py -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA GPU is visible to torch; nothing to check" >&2
    exit 2
fi
summary=()
step() {  # step NAME TIMEOUT_S COMMAND...: run, log, and keep one summary line
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    summary+=("$(printf '%-15s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - start))")")
}
$py -c "import torch; print(torch.__version__, torch.cuda.get_device_name(), f'{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB')" \
    >"$out/device.log" 2>&1
step tests 180 $py -m pytest -q -m cuda tests/cuda
step bench 200 .venv/bin/fra bench --device cuda --batch 1 8 64 auto
step bench-channels 120 .venv/bin/fra bench-channels --device cuda
echo "== device: $(cat "$out/device.log")"
printf '%s\n' "${summary[@]}"
echo "== tests";          tail -n 3 "$out/tests.log"
echo "== bench";          grep -A8 "batch   seconds" "$out/bench.log" || tail -n 12 "$out/bench.log"
echo "== bench-channels"; grep -E "statistics from|end to end|identical" "$out/bench-channels.log" || tail -n 8 "$out/bench-channels.log"
