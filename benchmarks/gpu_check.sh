#!/usr/bin/env bash
# Device check (benchmarks/README.md, "GPU check"): does the engine keep one GPU busy?
#   bash benchmarks/gpu_check.sh                      # the full check, under 6 minutes on one GPU
#   bash benchmarks/gpu_check.sh --cpu-smoke --out /tmp/check
# Runs from the repository root (a relative --out is taken from there); PYTHON picks the
# interpreter (default: python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
