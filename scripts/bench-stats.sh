#!/usr/bin/env bash
# Times one round of the host daemon's status collection (inspect and stats of every agent
# container, as the daemon does for each heartbeat) with 10 and 50 running Lite agents.
#
# Usage: scripts/bench-stats.sh [COUNT ...]        (default: 10 50)
#
# Needs a Docker engine and the busybox test image sparebox-agent-test:local
# (scripts/ensure-docker.sh, scripts/build-agent-image.sh). For each count it makes sure
# that many containers run, named as the runtime names agents (sparebox-agent-<short id>),
# with the Lite limits and the runtime's hardening, then runs the example
# sparebox-hostd/examples/stats_round.rs on them in each mode: `all` (every agent at once,
# as the daemon does) and `sequential`, for comparison (`bounded:N` is also available). The containers carry
# only this run's own label (dev.sparebox.bench), not the agent label, so daemons of other
# runs on the same engine leave them alone; the runtime's inspect finds them by name. All of
# them are removed at the end, also on failure. Prints one line per count and mode.
#
# Environment: SPAREBOX_BENCH_ROUNDS (measured rounds per mode, default 20),
# SPAREBOX_BENCH_SEQUENTIAL_ROUNDS (default 1: a sequential round takes about 2 s per
# agent), SPAREBOX_BENCH_MODES (default "all sequential"), CARGO_TARGET_DIR.
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$(pwd)"
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10 50)
rounds="${SPAREBOX_BENCH_ROUNDS:-20}"
sequential_rounds="${SPAREBOX_BENCH_SEQUENTIAL_ROUNDS:-1}"
read -r -a modes <<<"${SPAREBOX_BENCH_MODES:-all sequential}"
target="${CARGO_TARGET_DIR:-$repo/target}"
image="sparebox-agent-test:local"
run_label="dev.sparebox.bench=stats-$$-$(date +%s)"

say() { echo "bench-stats: $*" >&2; }
die() { echo "bench-stats: error: $*" >&2; exit 1; }

command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "no Docker engine (scripts/ensure-docker.sh)"
docker image inspect "$image" >/dev/null 2>&1 || die "no $image (scripts/build-agent-image.sh)"

say "building the example"
cargo build --release -p sparebox-hostd --example stats_round >&2
example="$target/release/examples/stats_round"

cleanup() {
    ids="$(docker ps -aq --filter "label=$run_label")"
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
}
trap cleanup EXIT

agents=()
# One Lite agent container with the runtime's name, limits and hardening.
add_agent() {
    local agent
    agent="$(python3 -c 'import uuid; print(uuid.uuid4())')"
    agents+=("$agent")
    docker run -d --name "sparebox-agent-${agent:0:8}" --label "$run_label" \
        --user 1000:1000 --memory 1g --memory-swap 1g --cpus 0.5 --pids-limit 512 \
        --read-only --cap-drop ALL --security-opt no-new-privileges --init \
        --tmpfs /tmp:rw,nosuid,nodev,mode=1777 \
        --tmpfs /home/node:rw,nosuid,nodev,uid=1000,gid=1000,mode=0700 \
        "$image" >/dev/null
}

say "load average:$(uptime | sed 's/.*load average://')"
for count in "${counts[@]}"; do
    while [ ${#agents[@]} -lt "$count" ]; do
        add_agent
    done
    # Let the containers finish starting so a round sees them all running.
    sleep 5
    running="$(docker ps -q --filter "label=$run_label" --filter status=running | wc -l)"
    [ "$running" -ge "$count" ] || die "only $running of $count containers run"
    for mode in "${modes[@]}"; do
        n="$rounds"
        [ "$mode" != sequential ] || n="$sequential_rounds"
        say "$count agents, mode $mode, $n rounds (load average:$(uptime | sed 's/.*load average://'))"
        "$example" --rounds "$n" --mode "$mode" "${agents[@]:0:$count}"
    done
done
say "load average:$(uptime | sed 's/.*load average://')"
