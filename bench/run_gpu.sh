#!/usr/bin/env bash
# The GPU side of the benchmark (the H100 machine: torch 2.11 + cu130, vLLM 0.26 unpacked in /tmp/vsite).
#
#   bash bench/run_gpu.sh models [SHAPES]   # start writing random checkpoints to /tmp (background; default 0.6B,4B,8B)
#   bash bench/run_gpu.sh phase a [SECONDS] # run plan a of bench/plans.py; results and log under $OUT
#   bash bench/run_gpu.sh phase e 300 LABEL@SHAPE,...  # only those runs of the plan (e.g. ones a phase had no time for)
#   (plan d also needs .vllm-gpu/server-wheels carried: `vllm serve`'s extra wheels, bench/server_wheels.sh)
#
# The checkpoints are written by a detached process (setsid) so that the calls that carry the vLLM bundle
# overlap with it; a phase waits for the ".done" markers before anything touches the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=${T0:-$(date +%s)}

case "${1:-}" in
  models)
    # A private copy: the working tree is replaced by the next call while the writer still runs.
    rm -rf /tmp/q3src && mkdir -p /tmp/q3src && cp -r src tests/fixtures/qwen3-tokenizer /tmp/q3src/
    specs=""
    for shape in $(echo "${2:-0.6B,4B,8B}" | tr , ' '); do
      case "$shape" in 0.6B) specs="$specs 0.6B:m06" ;; 4B) specs="$specs 4B:m4" ;; 8B) specs="$specs 8B:m8" ;;
        *) echo "unknown shape $shape (0.6B, 4B or 8B)" >&2; exit 2 ;; esac
    done
    touch /tmp/.writing-models
    SPECS=$specs setsid nohup bash -c '
      cd /tmp/q3src
      for spec in $SPECS; do
        shape=${spec%%:*}; dir=/tmp/${spec##*:}
        start=$(date +%s)
        PYTHONPATH=/tmp/q3src/src python3 -m qwen3_rerank.cli random-model "$dir" --tokenizer qwen3-tokenizer \
          --shape "$shape" --dtype bfloat16 --device cuda && touch "$dir/.done"
        echo "$shape written in $(( $(date +%s) - start )) s"
      done
      rm -f /tmp/.writing-models' >/tmp/models.log 2>&1 </dev/null &
    echo "writing checkpoints in the background (log: /tmp/models.log)"
    ;;
  phase)
    plan=${2:?plan name}
    budget=${3:-570}
    only=${4:-}
    out=${OUT:-/tmp/benchout}
    mkdir -p "$out" /tmp/benchres
    export PYTHONPATH=/tmp/vsite/site:$PWD/src VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 \
      VLLM_NO_USAGE_STATS=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
    # Checkpoint writing holds GPU memory; vLLM sizes its cache from what is free at start.
    while [ -e /tmp/.writing-models ] && [ $(( $(date +%s) - t0 )) -lt 200 ]; do sleep 2; done
    cat /tmp/models.log 2>/dev/null || true
    if [ "$plan" = d ] || [ "$plan" = g2 ]; then
      bash bench/server_wheels.sh install || echo "server wheels not installed: the vllm_serve run will fail"
    fi
    left=$(( budget - ($(date +%s) - t0) ))
    echo "plan $plan: $left s left"
    nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,driver_version --format=csv || true
    python3 bench/bench_rerank.py --plan "$plan" --models-root /tmp --out-dir /tmp/benchres \
      --merge-to "$out/results_$plan.json" --log "$out/log_$plan.txt" --deadline-s "$left" --only "$only"
    ;;
  *)
    echo "usage: bash bench/run_gpu.sh models | phase PLAN [SECONDS]" >&2
    exit 2
    ;;
esac
