#!/usr/bin/env bash
# Install what the tests need, then run the whole test suite (as root).
# Extra arguments go to pytest, e.g. scripts/test.sh -k inventory
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check labctl tests bench
# -rfEs: the default summary of failures and errors, and why each skipped test skipped
# (one line each, e.g. the POX tests without POX)
exec .venv/bin/python -m pytest -p no:cacheprovider -rfEs "$@"
