#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite on CPU: core, adapters, server and Ray tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1
.venv/bin/python -m ruff check src integrations tests bench examples
NO_MKDOCS_2_WARNING=1 .venv/bin/python -m mkdocs build --strict --quiet --site-dir .cache/site
.venv/bin/python -m pytest -m "not slow" "$@"
