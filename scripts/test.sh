#!/usr/bin/env bash
# Sets everything up (see scripts/setup.sh), then runs the linter and the whole test suite against a
# real nats-server, the real Docker engine and the stand-in backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/pytest "$@"
