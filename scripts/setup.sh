#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian machine (run as root): Docker engine, debootstrap, the Python
# environment in .venv, a running dockerd, and the locally built sandbox images. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "setup: $*"; }

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "cannot install ${need_apt[*]} without root; the demo falls back to the process runtime"
  else
    say "installing ${need_apt[*]} (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import lumia, nats, fastapi, aiodocker, watchfiles, msgspec, pytest_asyncio" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  say "installing the project and its test tools into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
  touch .venv/.installed
fi

docker_up() { timeout 5 docker info >/dev/null 2>&1; }
if command -v dockerd >/dev/null 2>&1 && ! docker_up; then
  if [ "$(id -u)" -eq 0 ]; then
    say "starting dockerd (log: /var/log/lumia-dockerd.log)"
    nohup dockerd >/var/log/lumia-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do docker_up && break; sleep 0.5; done
  fi
fi
if docker_up; then
  .venv/bin/lumia image build
else
  say "no Docker engine here; Docker tests will be skipped (they fail under CI=true)"
fi
