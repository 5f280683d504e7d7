#!/usr/bin/env bash
# Wheels that `vllm serve` imports at start-up and the vLLM bundle (shared/gpu/pack-vllm.sh) lacks, for the
# "vllm_serve" contender of plan d (shared/gpu/README.md, last section).
#
#   bash bench/server_wheels.sh fetch     # here, with PyPI: Python 3.12 manylinux wheels -> .vllm-gpu/server-wheels
#   bash bench/server_wheels.sh install   # GPU machine: add the ones missing there to /tmp/vsite/site
#
# prometheus-fastapi-instrumentator: `vllm serve` imports it for /metrics (the H100 run of 2026-12-07 stopped on
# it); tenacity: our server backend's client needs it (httpx is on the GPU machine already).
# fetch resolves dependencies too; install skips every wheel whose distribution the GPU machine already has
# (with the bundle on PYTHONPATH), so nothing the machine or the bundle provides is shadowed.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${WHEELS:-.vllm-gpu/server-wheels}
case "${1:-}" in
  fetch)
    mkdir -p "$dir"
    "${PYTHON:-python3}" -m pip download -q --disable-pip-version-check --only-binary=:all: \
      --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any -d "$dir" uvicorn watchfiles model-hosting-container-standards jmespath \
      prometheus-fastapi-instrumentator tenacity
    ls "$dir"
    du -sh "$dir"
    ;;
  install)
    site=${SITE:-/tmp/vsite/site}
    missing=()
    for wheel in "$dir"/*.whl; do
      name=$(basename "$wheel" | cut -d- -f1)
      if ! PYTHONPATH="$site" python3 -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$name" \
          2>/dev/null; then
        missing+=("$wheel")
      fi
    done
    echo "server wheels missing here: ${#missing[@]}"
    if [ "${#missing[@]}" -gt 0 ]; then
      python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --target "$site" "${missing[@]}"
      printf '  %s\n' "${missing[@]##*/}"
    fi
    ;;
  *)
    echo "usage: bash bench/server_wheels.sh fetch | install" >&2
    exit 2
    ;;
esac
