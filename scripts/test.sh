#!/usr/bin/env bash
# The whole test suite: lint (ruff), types (mypy), then every test, slow ones included.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/env.sh" dev | tail -n 1)"
cd "$root"
# PostgreSQL and Redis for the guard service's tests; exports the URLs they read.
. "$root/scripts/services.sh"
"$venv/bin/ruff" check src tests bench
"$venv/bin/mypy"
exec "$venv/bin/python" -m pytest -q "$@"
