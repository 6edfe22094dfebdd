#!/usr/bin/env bash
# The main job: evaluate bundled and third-party MNIST models and write the robustness card.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/env.sh" main | tail -n 1)"
cd "$root"
exec "$venv/bin/bastion" demo --out "${1:-out/demo}"
