#!/usr/bin/env bash
# Apply ruff's formatter to the whole tree (config: [tool.ruff.format] in pyproject.toml).
# scripts/test.sh checks it with `ruff format --check src integrations tests bench examples`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m ruff format src integrations tests bench examples "$@"
