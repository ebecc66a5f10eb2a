#!/usr/bin/env bash
# Sets everything up (see scripts/setup.sh), then runs the demo: embedded NATS, stand-in backend,
# every service, one bundled bot through the API; prints the outcome, the timeline and the log path.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/lumia demo "$@"
