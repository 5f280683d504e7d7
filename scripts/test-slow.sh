#!/usr/bin/env bash
# The tests CI deselects (-m slow): vLLM inside Ray actors (tests/system/test_ray_runner.py), a real `vllm serve`
# killed and restarted (tests/system/test_server_backend.py), the long fault run (tests/system/test_faults.py).
# Several engine starts each: about 10-20 minutes on two cores. Run before a release, or after touching
# batch/, the server backend or the engine's failure handling.
set -euo pipefail
cd "$(dirname "$0")/.."
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m pytest -m slow -rs tests/system/test_ray_runner.py tests/system/test_server_backend.py tests/system/test_faults.py "$@"
