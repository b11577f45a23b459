#!/usr/bin/env bash
# From a fresh Debian 12 machine to a verified lab: install what is missing,
# bring up the bundled two-host lab (simulated) and ping every VM pair.
# Afterwards: .venv/bin/labctl status | verify | down
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/labctl up
.venv/bin/labctl verify
