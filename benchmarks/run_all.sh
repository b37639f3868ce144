#!/usr/bin/env bash
# Every CPU benchmark in one go, at the sizes docs/benchmarks.md reports (about 45 minutes on 2 uncontended cores),
# most important first. Each script prints the machine (benchmarks/common.py machine()) first; on a CPU without
# native bf16 the bf16-only figures (attention kernels, bf16 matmul peaks, bf16 variants) read "n/a".
# Run it under the shared CPU lock so nothing else heavy runs meanwhile:
#   flock /tmp/sentitune-cpu.lock bash benchmarks/run_all.sh [results-folder]
# Each benchmark's full output goes to <results-folder>/<name>.txt (default benchmarks/results/).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results}"
mkdir -p "$OUT"

run() {  # run NAME SCRIPT ARGS...: time it and keep its output
  local name="$1"; shift
  echo "== $name: python benchmarks/$*"
  local start=$SECONDS
  python "benchmarks/$@" > "$OUT/$name.txt" 2>&1 || echo "$name failed (see $OUT/$name.txt)"
  echo "   done in $((SECONDS - start)) s; last lines:"
  grep -v -e '^Map' -e '^tokenize' "$OUT/$name.txt" | tail -4 | sed 's/^/   /'
}

run train_throughput train_throughput.py --train-examples 320 --repeats 2 --arms reference sentitune sentitune-sdpa
run attention_kernels attention_kernels.py
run flops flops.py --train-examples 240
# needs a cpu-quick run
run inference_model inference.py --reviews 2000 --repeats 2 --model runs/cpu-quick/model
run accuracy_parity accuracy_parity.py --train-examples 2000 --test-examples 2000 \
    --arms reference sentitune sentitune-sdpa
run profile_step_no_dropout profile_step.py --dropout 0.0
run time_to_accuracy time_to_accuracy.py --preset cpu-full --cap-minutes 12 --eval-every 150
