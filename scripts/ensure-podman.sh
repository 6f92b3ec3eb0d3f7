#!/usr/bin/env bash
# Makes sure Podman's Docker-compatible API answers on this machine, with the test image loaded.
#
# Usage: scripts/ensure-podman.sh
#
# Meant for a fresh Debian 12 machine, run as root (rootful Podman). Idempotent. It:
#   1. installs Debian's `podman` (4.3) when it is missing, and `catatonit`, the init process
#      Podman runs for containers created with an init (every Sparebox agent is);
#   2. writes /etc/containers/containers.conf with `default_ulimits = []` when that file has no
#      `default_ulimits` line: Podman 4.3 otherwise sets per-container rlimits that fail on
#      these machines ("error setting rlimit type 7");
#   3. writes `events_logger = "file"` under `[engine]` when no events logger is set: the default
#      (journald) loses every event on machines without systemd's journal, and the runtime's
#      lifecycle events come from the engine's event stream;
#   4. starts `podman system service --time=0` on $SPAREBOX_PODMAN_SOCKET
#      (default /run/podman/podman.sock) in the background, log in $SPAREBOX_PODMAN_LOG
#      (default /var/log/podman-service.log), and waits for it to answer;
#   5. builds the test agent image into Podman's store through that socket
#      (scripts/build-agent-image.sh with DOCKER_HOST pointing at it). Set
#      SPAREBOX_PODMAN_SKIP_IMAGE=1 to skip this step.
#
# The docker client (from scripts/ensure-docker.sh) is used to talk to the socket.
set -euo pipefail

socket="${SPAREBOX_PODMAN_SOCKET:-/run/podman/podman.sock}"
log_file="${SPAREBOX_PODMAN_LOG:-/var/log/podman-service.log}"
wait_secs="${SPAREBOX_PODMAN_WAIT_SECS:-60}"
conf=/etc/containers/containers.conf
here="$(cd "$(dirname "$0")" && pwd)"

say() { echo "ensure-podman: $*"; }
die() { echo "ensure-podman: error: $*" >&2; exit 1; }

api_answers() {
    curl -fsS --max-time 5 --unix-socket "$socket" http://d/_ping >/dev/null 2>&1
}

[ "$(id -u)" -eq 0 ] || die "this script sets up rootful Podman and needs root"

export DEBIAN_FRONTEND=noninteractive
if ! command -v podman >/dev/null 2>&1; then
    say "podman missing: installing it"
    apt-get update -qq
    apt-get install -y -qq podman >/dev/null
fi
if [ ! -x /usr/libexec/podman/catatonit ]; then
    say "catatonit missing: installing it"
    apt-get install -y -qq catatonit >/dev/null || {
        apt-get update -qq && apt-get install -y -qq catatonit >/dev/null
    }
fi
command -v curl >/dev/null 2>&1 || apt-get install -y -qq curl >/dev/null

# Adds `line` under `[section]` of $conf unless a line starting with `key` is there.
set_conf() {
    local section="$1" key="$2" line="$3"
    grep -qs "^[[:space:]]*$key[[:space:]]*=" "$conf" && return 0
    say "writing $line under [$section] in $conf"
    if grep -qs "^\[$section\]" "$conf"; then
        sed -i "/^\[$section\]/a $line" "$conf"
    else
        printf '\n[%s]\n%s\n' "$section" "$line" >>"$conf"
    fi
    conf_changed=1
}
conf_changed=0
mkdir -p "$(dirname "$conf")"
set_conf containers default_ulimits 'default_ulimits = []'
set_conf engine events_logger 'events_logger = "file"'
pid_file="$(dirname "$socket")/sparebox-podman-service.pid"

if [ "$conf_changed" = 1 ] && [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    say "restarting the API service this script started, to apply $conf"
    kill "$(cat "$pid_file")" && sleep 2
elif [ "$conf_changed" = 1 ] && api_answers; then
    say "warning: an API service this script did not start answers on $socket; restart it to apply $conf"
fi

if api_answers; then
    say "API already answers on $socket ($(podman --version))"
else
    mkdir -p "$(dirname "$socket")" "$(dirname "$log_file")"
    if [ -S "$socket" ]; then
        say "removing stale socket $socket"
        rm -f "$socket"
    fi
    say "starting podman system service on $socket (log: $log_file)"
    # From /: the service outlives this script's directory (a CI checkout may be deleted
    # while it runs), and container starts fail with "write child: broken pipe" when its
    # working directory is gone.
    (cd / && exec nohup podman system service --time=0 "unix://$socket" >>"$log_file" 2>&1 </dev/null) &
    echo $! >"$pid_file"
    disown || true
    for _ in $(seq 1 "$wait_secs"); do
        api_answers && break
        sleep 1
    done
    api_answers || {
        echo "ensure-podman: error: no answer on $socket within ${wait_secs}s; last lines of $log_file:" >&2
        tail -n 20 "$log_file" >&2 || true
        exit 1
    }
    say "API ready on $socket ($(podman --version))"
fi

if [ "${SPAREBOX_PODMAN_SKIP_IMAGE:-0}" != "1" ]; then
    if ! command -v docker >/dev/null 2>&1; then
        say "no docker client for building the test image: running scripts/ensure-docker.sh"
        bash "$here/ensure-docker.sh"
    fi
    DOCKER_HOST="unix://$socket" bash "$here/build-agent-image.sh"
fi
