#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine, installing and starting one if needed.
#
# Usage: scripts/ensure-docker.sh
#
# Meant for a fresh Debian 12 machine, run as root. Idempotent: when `docker info` already
# works it does nothing. Otherwise it installs Debian's `docker.io` when `dockerd` is missing,
# starts `dockerd` in the background with its log in $SPAREBOX_DOCKERD_LOG
# (default /var/log/dockerd.log) and waits up to $SPAREBOX_DOCKER_WAIT_SECS seconds
# (default 60) for the engine to answer.
#
# Debian's engine (20.10) speaks Docker API 1.41 at most. A newer `docker` client on PATH
# (for example /usr/local/bin/docker from upstream) negotiates down on its own; library
# clients must negotiate too.
set -euo pipefail

log_file="${SPAREBOX_DOCKERD_LOG:-/var/log/dockerd.log}"
wait_secs="${SPAREBOX_DOCKER_WAIT_SECS:-60}"
socket="/var/run/docker.sock"

say() { echo "ensure-docker: $*"; }
die() { echo "ensure-docker: error: $*" >&2; exit 1; }

engine_answers() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

if engine_answers; then
    say "engine already running ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown version))"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    die "no engine answers and starting one needs root; rerun as root"
fi

if ! command -v dockerd >/dev/null 2>&1; then
    say "dockerd missing: installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
fi

if pgrep -x dockerd >/dev/null 2>&1; then
    say "dockerd already started; waiting for it to answer"
else
    # A stale socket or pid file from a killed daemon stops a new one from starting.
    if [ -S "$socket" ] || [ -f /var/run/docker.pid ]; then
        say "removing stale $socket and pid file"
        rm -f "$socket" /var/run/docker.pid
    fi
    say "starting dockerd (log: $log_file)"
    mkdir -p "$(dirname "$log_file")"
    (cd / && exec nohup dockerd >>"$log_file" 2>&1 </dev/null) &
    disown || true
fi

for _ in $(seq 1 "$wait_secs"); do
    if [ -S "$socket" ] && engine_answers; then
        say "engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown version))"
        exit 0
    fi
    sleep 1
done

echo "ensure-docker: error: engine did not answer on $socket within ${wait_secs}s; last lines of $log_file:" >&2
tail -n 20 "$log_file" >&2 || true
exit 1
