#!/usr/bin/env bash
# The whole test suite: lint (ruff), types (mypy), import contracts (import-linter), then
# every test, slow ones included.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/env.sh" dev | tail -n 1)"
cd "$root"
# PostgreSQL and Redis for the guard service's tests; exports the URLs they read.
. "$root/scripts/services.sh"
"$venv/bin/ruff" check src tests bench
"$venv/bin/mypy"
"$venv/bin/lint-imports"  # the import contracts of pyproject.toml
exec "$venv/bin/python" -m pytest -q "$@"
