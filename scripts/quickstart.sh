#!/usr/bin/env bash
# Set up, then rank the example documents for a query with vLLM (the main job).
#   bash scripts/quickstart.sh [MODEL]
# MODEL defaults to Qwen/Qwen3-Reranker-0.6B when it can be downloaded or is cached; offline, a tiny
# random-weight stand-in is built with the real tokenizer (its scores are meaningless, the pipeline is real).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2} VLLM_NO_USAGE_STATS=1
model=${1:-Qwen/Qwen3-Reranker-0.6B}
if [ ! -d "$model" ] && ! .venv/bin/python -c "import sys, huggingface_hub as h; h.snapshot_download(sys.argv[1])" "$model" >/dev/null 2>&1; then
  echo "quickstart: $model cannot be downloaded here; using a tiny random-weight stand-in (.cache/tiny-model)." >&2
  [ -f .cache/tiny-model/config.json ] || .venv/bin/qwen3-rerank random-model .cache/tiny-model --tokenizer tests/fixtures/qwen3-tokenizer >/dev/null
  model=.cache/tiny-model
fi
.venv/bin/qwen3-rerank rank "What is the capital of France?" --documents examples/data/documents.txt --model "$model" --top-n 5
