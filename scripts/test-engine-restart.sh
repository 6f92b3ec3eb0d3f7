#!/usr/bin/env bash
# Runs the host daemon's engine-restart test: it stops the Docker engine under a running
# daemon, starts it again and checks that agents come back as their deployers left them.
#
# Usage: scripts/test-engine-restart.sh
#
# Run it as root on a machine where nothing else uses the engine at the same time: every
# container on the engine is stopped and started again. The engine must have been started
# by scripts/ensure-docker.sh (or leave its pid in /var/run/docker.pid); the test stops it
# by that pid and starts it again with the same script.
set -euo pipefail

cd "$(dirname "$0")/.."
say() { echo "test-engine-restart: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "test-engine-restart: error: restarting the engine needs root" >&2
    exit 1
fi

bash scripts/ensure-docker.sh
if ! docker image inspect sparebox-agent-test:local >/dev/null 2>&1; then
    bash scripts/build-agent-image.sh
fi
say "restarting the Docker engine during the test: other work on it will be disturbed"
cargo test -p sparebox-hostd --test engine_restart -- --ignored --test-threads=1
# Whatever happened, leave an engine running.
bash scripts/ensure-docker.sh
