#!/usr/bin/env bash
# Measures the host daemon's own footprint (resident memory and CPU) while it manages 0, 10
# and 50 agents, and writes the figures to sparebox-hostd/BENCHMARKS.md.
#
# Usage: scripts/bench-hostd.sh [COUNT ...]        (default: 0 10 50)
#
# Needs a Docker engine and the busybox test image sparebox-agent-test:local
# (scripts/ensure-docker.sh, scripts/build-agent-image.sh). It builds release binaries,
# runs a real sparebox-server on 127.0.0.1 with SQLite in a temporary directory and
# registers one host. For each count it creates that many Lite agent containers (labelled
# like the runtime's, with the Lite limits) and starts sparebox-hostd, which adopts them at
# start-up and from then on inspects and reports them like deployed agents. Agents are
# created this way rather than through the API because the server places agents by the
# host's slots (a 2-core machine takes 3 Lite agents). After settling it samples the
# daemon's /proc/<pid>/status (VmRSS, VmHWM) and /proc/<pid>/stat (utime + stime) over a
# window. Everything it started (processes, containers, files) is removed at the end, also
# on failure.
#
# Environment: SPAREBOX_BENCH_SETTLE (seconds before sampling, default 20),
# SPAREBOX_BENCH_WINDOW (seconds of CPU sampling, default 60), SPAREBOX_BENCH_SERVER (a
# sparebox-server binary to use instead of building one; only the daemon is measured),
# CARGO_TARGET_DIR.
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$(pwd)"
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(0 10 50)
settle="${SPAREBOX_BENCH_SETTLE:-20}"
window="${SPAREBOX_BENCH_WINDOW:-60}"
target="${CARGO_TARGET_DIR:-$repo/target}"
image="sparebox-agent-test:local"
out="$repo/sparebox-hostd/BENCHMARKS.md"

say() { echo "bench-hostd: $*" >&2; }
die() { echo "bench-hostd: error: $*" >&2; exit 1; }

command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "no Docker engine (scripts/ensure-docker.sh)"
docker image inspect "$image" >/dev/null 2>&1 || die "no $image (scripts/build-agent-image.sh)"
command -v curl >/dev/null || die "curl is needed"

server_bin="${SPAREBOX_BENCH_SERVER:-}"
if [ -z "$server_bin" ]; then
    say "building release binaries"
    cargo build --release -p sparebox-hostd -p sparebox-server --bins >&2
    server_bin="$target/release/sparebox-server"
else
    say "building the release daemon; server: $server_bin"
    cargo build --release -p sparebox-hostd --bins >&2
fi
hostd_bin="$target/release/sparebox-hostd"

work="$(mktemp -d)"
server_pid=""
hostd_pid=""
agents=()
cleanup() {
    [ -z "$hostd_pid" ] || kill "$hostd_pid" 2>/dev/null || true
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    for agent in "${agents[@]}"; do
        ids="$(docker ps -aq --filter "label=dev.sparebox.agent-id=$agent")"
        [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port="$(free_port)"
base="http://127.0.0.1:$port"
"$server_bin" --listen "127.0.0.1:$port" --data-dir "$work/server" --agent-image "$image" \
    --allow-generated-key >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null || die "server did not start: $(tail -5 "$work/server.log")"

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
token="$(curl -fsS -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery staple","roles":["host_owner","deployer"]}' \
    "$base/api/v1/users" | json "['apiToken']")"
host="$(curl -fsS -H 'content-type: application/json' -H "Authorization: Bearer $token" \
    -d '{"name":"bench host"}' "$base/api/v1/hosts")"
host_key="$(echo "$host" | json "['hostKey']")"

start_hostd() {
    SPAREBOX_HOST_KEY="$host_key" "$hostd_bin" run --server "$base" --config "$work/none.toml" \
        --data-dir "$work/hostd" --runtime docker --port-range-start 30000 \
        >>"$work/hostd.log" 2>&1 &
    hostd_pid=$!
    sleep 2
    kill -0 "$hostd_pid" 2>/dev/null || die "hostd did not start: $(tail -5 "$work/hostd.log")"
}

stop_hostd() {
    kill "$hostd_pid"
    while kill -0 "$hostd_pid" 2>/dev/null; do sleep 0.2; done
    hostd_pid=""
}

# One Lite agent container as the runtime would label and limit it.
add_agent() {
    local agent name
    agent="$(python3 -c 'import uuid; print(uuid.uuid4())')"
    name="sparebox-agent-${agent:0:8}"
    agents+=("$agent")
    docker run -d --name "$name" --label "dev.sparebox.agent-id=$agent" \
        --label "dev.sparebox.tier=lite" --memory 1g --memory-swap 1g --cpus 0.5 \
        --pids-limit 512 --read-only --tmpfs /tmp --cap-drop ALL \
        --security-opt no-new-privileges --restart unless-stopped \
        -p "127.0.0.1:$((30000 + ${#agents[@]}))":18789 "$image" >/dev/null
}

clk_tck="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$hostd_pid/stat"; }
status_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$hostd_pid/status"; }

rows=()
for count in "${counts[@]}"; do
    while [ ${#agents[@]} -lt "$count" ]; do
        add_agent
    done
    start_hostd
    adopted=0
    for _ in $(seq 1 120); do
        adopted="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["agents"]))' \
            "$work/hostd/journal.json" 2>/dev/null || echo 0)"
        [ "$adopted" -ge "$count" ] && break
        sleep 1
    done
    [ "$adopted" -ge "$count" ] || die "hostd manages $adopted of $count agents"
    sleep "$settle"
    before="$(cpu_ticks)"
    sleep "$window"
    after="$(cpu_ticks)"
    cpu="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v w="$window" 'BEGIN {printf "%.2f", 100 * t / hz / w}')"
    rss="$(awk -v kb="$(status_kb VmRSS)" 'BEGIN {printf "%.1f", kb / 1024}')"
    hwm="$(awk -v kb="$(status_kb VmHWM)" 'BEGIN {printf "%.1f", kb / 1024}')"
    threads="$(status_kb Threads)"
    say "$count agents: rss ${rss} MiB, peak ${hwm} MiB, cpu ${cpu}% of one core, ${threads} threads"
    rows+=("| $count | $rss | $hwm | $cpu | $threads |")
    stop_hostd
done

# Later sections of the file (other benchmarks' figures, each under a `## ` heading) are kept.
later=""
[ ! -f "$out" ] || later="$(awk '/^## /{keep=1} keep' "$out")"
{
    echo "# sparebox-hostd footprint"
    echo
    echo "Measured by \`scripts/bench-hostd.sh\` on $(date -u +%Y-%m-%d): the release daemon against a real"
    echo "\`sparebox-server\` (SQLite) on loopback, Docker $(docker version --format '{{.Server.Version}}'),"
    echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo) GiB RAM. Agents are Lite containers of the busybox test"
    echo "image \`$image\`, so only the daemon's own cost is measured, not OpenClaw's. The"
    echo "containers carry the runtime's labels and Lite limits and are adopted by the daemon at"
    echo "start-up (the server places agents by slots, 3 Lite on this machine); each heartbeat"
    echo "then inspects every agent and samples its stats, as for deployed agents."
    echo "The server's default heartbeat interval (60 s) applies; an idle daemon long-polls (30 s),"
    echo "so it reports every agent's status and stats about twice a minute."
    echo
    echo "Resident memory is \`VmRSS\` (and the peak \`VmHWM\`) from \`/proc/<pid>/status\` after"
    echo "${settle} s of settling; CPU is \`utime + stime\` from \`/proc/<pid>/stat\` over ${window} s, in"
    echo "percent of one core."
    echo
    echo "| agents | RSS (MiB) | peak RSS (MiB) | CPU (% of one core) | threads |"
    echo "|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Reproduce: \`scripts/bench-hostd.sh\` (or \`scripts/bench-hostd.sh 0 10 50\`)."
    [ -z "$later" ] || printf '\n%s\n' "$later"
} >"$out"
say "wrote $out"
