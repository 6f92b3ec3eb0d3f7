#!/usr/bin/env bash
# Measures what a deploy through Sparebox costs over a bare `docker run` of the same image
# with the same limits: N deploys through the real server and the real host daemon, then N
# bare `docker run -d`, each until the agent answers its health check.
#
# Usage: scripts/bench-deploy.sh [N]        (default: 10)
#
# Needs a Docker engine and the busybox test image sparebox-agent-test:local
# (scripts/ensure-docker.sh, scripts/build-agent-image.sh), curl, jq, sqlite3 and python3.
# Builds release binaries, runs a real sparebox-server on 127.0.0.1 with SQLite in a
# temporary directory and the real sparebox-hostd with the Docker runtime and debug logs in
# JSON. The server asks for a heartbeat every SPAREBOX_BENCH_HEARTBEAT seconds (default 5);
# an idle daemon long-polls for that long, and a new command answers the held heartbeat at
# once. Each deploy is issued once the daemon is idle again (interval + 1 s after the
# previous undeploy was acked; daemons before commit a64750b waited that long before
# long-polling again): the deploy meets a daemon in a long poll, as on a quiet host. Each deploy is one Lite agent through the API (POST /api/v1/agents); the script
# waits until the server has the command acked, then undeploys the agent and waits for
# that too (the host has slots for 3 Lite agents on two cores). Deploys start at least
# SPAREBOX_BENCH_PACE seconds apart (default 7) so the per-host limit on deploy bundles
# (10 a minute) never delays one.
#
# Per deploy it reads the server's command timestamps (created, sent to the daemon, acked)
# and the daemon's journalled stages from its log (command started, fetching config,
# pulling, creating, starting, container started, ready), and breaks the time down into:
#   deliver   API call to the command leaving the server in a heartbeat answer
#   bundle    fetching and checking the deploy bundle
#   image     the image check (the image is present: no pull)
#   prepare   port claim, removing any old container, writing the agent's files
#   create    network check, container create and start
#   health    container started to the first passing health probe (polled every second)
#   ack       agent ready to the server recording the ack (next heartbeat)
# The baseline is `docker run -d` with the runtime's options (user, Lite memory, CPU and
# pids limits, read-only root, tmpfs, dropped capabilities, no-new-privileges, init,
# restart policy, state bind mount, loopback port, the agent network when present), then
# polling GET /healthz every 20 ms until it answers {"ok":true}: the daemon's criterion.
# Every container it started is removed at the end, also on failure.
#
# Environment: SPAREBOX_BENCH_PACE, SPAREBOX_BENCH_HEARTBEAT, SPAREBOX_BENCH_SERVER and
# SPAREBOX_BENCH_HOSTD (release binaries to use instead of building them; with both given,
# nothing is built), CARGO_TARGET_DIR.
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$(pwd)"
runs="${1:-10}"
pace="${SPAREBOX_BENCH_PACE:-7}"
heartbeat="${SPAREBOX_BENCH_HEARTBEAT:-5}"
target="${CARGO_TARGET_DIR:-$repo/target}"
image="sparebox-agent-test:local"
run_label="dev.sparebox.bench=deploy-$$-$(date +%s)"

say() { echo "bench-deploy: $*" >&2; }
die() { echo "bench-deploy: error: $*" >&2; exit 1; }

command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "no Docker engine (scripts/ensure-docker.sh)"
docker image inspect "$image" >/dev/null 2>&1 || die "no $image (scripts/build-agent-image.sh)"
for tool in curl jq sqlite3 python3; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done

server_bin="${SPAREBOX_BENCH_SERVER:-}"
hostd_bin="${SPAREBOX_BENCH_HOSTD:-}"
if [ -z "$server_bin" ] || [ -z "$hostd_bin" ]; then
    say "building release binaries"
    cargo build --release -p sparebox-hostd -p sparebox-server --bins >&2
fi
server_bin="${server_bin:-$target/release/sparebox-server}"
hostd_bin="${hostd_bin:-$target/release/sparebox-hostd}"

work="$(mktemp -d)"
db="$work/server/sparebox.db"
server_pid=""
hostd_pid=""
cleanup() {
    [ -z "$hostd_pid" ] || kill "$hostd_pid" 2>/dev/null || true
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    for agent in $(sqlite3 "$db" "SELECT id FROM agents" 2>/dev/null); do
        docker ps -aq --filter "label=dev.sparebox.agent-id=$agent" | xargs -r docker rm -f >/dev/null
    done
    docker ps -aq --filter "label=$run_label" | xargs -r docker rm -f >/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
now_us() { python3 -c 'import time; print(int(time.time() * 1e6))'; }

port="$(free_port)"
base="http://127.0.0.1:$port"
(cd / && exec "$server_bin" --listen "127.0.0.1:$port" --data-dir "$work/server" \
    --agent-image "$image" --allow-generated-key --heartbeat-interval "$heartbeat" \
    >"$work/server.log" 2>&1) &
server_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null || die "server did not start: $(tail -5 "$work/server.log")"

token="$(curl -fsS -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery staple","roles":["host_owner","deployer"]}' \
    "$base/api/v1/users" | jq -r .apiToken)"
host="$(curl -fsS -H 'content-type: application/json' -H "Authorization: Bearer $token" \
    -d '{"name":"bench host"}' "$base/api/v1/hosts")"
host_id="$(jq -r .host.id <<<"$host")"
host_key="$(jq -r .hostKey <<<"$host")"
api() { # method path [body]
    curl -fsS -X "$1" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
        ${3:+-d "$3"} "$base$2"
}

# A port range of its own, away from other runs' usual ranges.
port_start="$(python3 -c 'import random; print(40000 + 100 * random.randrange(200))')"
(cd / && RUST_LOG=sparebox_hostd=debug SPAREBOX_HOST_KEY="$host_key" exec "$hostd_bin" run \
    --server "$base" --config "$work/none.toml" --data-dir "$work/hostd" --runtime docker \
    --port-range-start "$port_start" --log-format json >"$work/hostd.log" 2>&1) &
hostd_pid=$!
for _ in $(seq 1 100); do
    [ "$(api GET /api/v1/hosts | jq -r ".[] | select(.id == \"$host_id\") | .online")" = true ] && break
    sleep 0.2
done
kill -0 "$hostd_pid" 2>/dev/null || die "hostd did not start: $(tail -5 "$work/hostd.log")"
# Let the first heartbeats and the start-up reconcile finish.
sleep 3

wait_command() { # command-id
    local status=""
    for _ in $(seq 1 1200); do
        status="$(sqlite3 "$db" "SELECT status FROM agent_commands WHERE id = '$1'")"
        case "$status" in acked | failed | expired | superseded) break ;; esac
        sleep 0.05
    done
    [ "$status" = acked ] || die "command $1 ended $status: $(sqlite3 "$db" "SELECT error FROM agent_commands WHERE id = '$1'")"
}

load_before="$(uptime | sed 's/.*load average: *//')"
: >"$work/deploys.txt"
for i in $(seq 1 "$runs"); do
    started="$(date +%s)"
    answer="$(api POST /api/v1/agents "{\"hostId\": \"$host_id\", \"tier\": \"lite\", \"name\": \"bench $i\",
        \"openclawConfig\": {}, \"workspaceFiles\": [{\"path\": \"SOUL.md\", \"content\": \"bench\"}]}")"
    agent="$(jq -r .agent.id <<<"$answer")"
    command="$(jq -r .command.id <<<"$answer")"
    wait_command "$command"
    echo "$agent $command" >>"$work/deploys.txt"
    say "deploy $i: agent $agent acked"
    undeploy="$(api POST "/api/v1/agents/$agent/commands" '{"type": "undeploy"}' | jq -r .id)"
    wait_command "$undeploy"
    # Back to idle, so the next deploy meets the daemon in a long poll (daemons before
    # commit a64750b took one interval after their last busy heartbeat to get there).
    sleep $((heartbeat + 1))
    rest=$((started + pace - $(date +%s)))
    [ "$rest" -le 0 ] || sleep "$rest"
done

# The baseline: the same container by hand, on the agent network when the daemon made one.
network_args=()
docker network inspect sparebox-agents >/dev/null 2>&1 && network_args=(--network sparebox-agents)
: >"$work/baseline.txt"
for i in $(seq 1 "$runs"); do
    hport="$(free_port)"
    state="$work/baseline-state-$i"
    mkdir -p "$state"
    t0="$(now_us)"
    docker run -d --name "sparebox-bench-deploy-$$-$i" --label "$run_label" \
        --user 1000:1000 --memory 1g --memory-swap 1g --cpus 0.5 --pids-limit 512 \
        --read-only --cap-drop ALL --security-opt no-new-privileges --init \
        --restart unless-stopped \
        --tmpfs /tmp:rw,nosuid,nodev,mode=1777 \
        --tmpfs /home/node:rw,nosuid,nodev,uid=1000,gid=1000,mode=0700 \
        -v "$state:/home/node/.openclaw:rw" "${network_args[@]}" \
        -p "127.0.0.1:$hport:18789" "$image" >/dev/null
    t1="$(now_us)"
    healthy=""
    for _ in $(seq 1 1500); do
        if curl -s --max-time 1 "http://127.0.0.1:$hport/healthz" 2>/dev/null | grep -q '"ok":true'; then
            healthy="$(now_us)"
            break
        fi
        sleep 0.02
    done
    [ -n "$healthy" ] || die "baseline container $i never became healthy"
    echo "$t0 $t1 $healthy" >>"$work/baseline.txt"
    docker rm -f "sparebox-bench-deploy-$$-$i" >/dev/null
    say "baseline $i: healthy after $(((healthy - t0) / 1000)) ms"
done
load_after="$(uptime | sed 's/.*load average: *//')"

python3 - "$db" "$work/hostd.log" "$work/deploys.txt" "$work/baseline.txt" \
    "$load_before" "$load_after" <<'PY'
import datetime, json, sqlite3, sys

db, log, deploys_file, baseline_file, load_before, load_after = sys.argv[1:]

def ts(text):
    # RFC 3339 with up to nanoseconds; keep microseconds.
    head, _, frac = text.rstrip("Z").partition(".")
    when = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.timezone.utc)
    return int(when.timestamp() * 1e6) + int((frac + "000000")[:6])

marks = {}  # (agent, mark) -> first time, in microseconds
for line in open(log):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    fields = entry.get("fields", {})
    agent = fields.get("agent.id")
    message = fields.get("message")
    if not agent:
        continue
    mark = None
    if message == "executing command" and fields.get("command.kind") == "deploy":
        mark = "executing"
    elif message == "deploy stage":
        mark = fields.get("deploy.stage")
    elif message == "container started":
        mark = "container_started"
    if mark and (agent, mark) not in marks:
        marks[(agent, mark)] = ts(entry["timestamp"])

conn = sqlite3.connect(db)
phases = ["deliver", "bundle", "image", "prepare", "create", "health", "ack"]
rows = {p: [] for p in phases + ["to_ready", "to_ack", "daemon_to_ready", "daemon_to_ack"]}
for line in open(deploys_file):
    agent, command = line.split()
    created, sent, acked = conn.execute(
        "SELECT created_at, sent_at, acked_at FROM agent_commands WHERE id = ?", (command,)
    ).fetchone()
    m = lambda name: marks[(agent, name)]
    ready = m("ready")
    rows["deliver"].append(sent - created)
    rows["bundle"].append(m("pulling") - m("fetching_config"))
    rows["image"].append(m("creating") - m("pulling"))
    rows["prepare"].append(m("starting") - m("creating"))
    rows["create"].append(m("container_started") - m("starting"))
    rows["health"].append(ready - m("container_started"))
    rows["ack"].append(acked - ready)
    rows["to_ready"].append(ready - created)
    rows["to_ack"].append(acked - created)
    rows["daemon_to_ready"].append(ready - sent)
    rows["daemon_to_ack"].append(acked - sent)

base = {"run": [], "to_healthy": []}
for line in open(baseline_file):
    t0, t1, healthy = map(int, line.split())
    base["run"].append(t1 - t0)
    base["to_healthy"].append(healthy - t0)

def p50(values):
    values = sorted(values)
    return values[(len(values) - 1) // 2]

def ms(us):
    return f"{us / 1000:.0f}"

def row(label, values):
    print(f"| {label} | {ms(p50(values))} | {ms(max(values))} |")

print(f"load average before: {load_before}; after: {load_after}")
print(f"deploys: {len(rows['to_ack'])}, baseline runs: {len(base['run'])}")
print()
print("| step | p50 (ms) | max (ms) |")
print("|---|---:|---:|")
row("hostd: command sent to the daemon -> agent healthy", rows["daemon_to_ready"])
row("hostd: command sent to the daemon -> ack recorded", rows["daemon_to_ack"])
row("hostd: API call -> agent healthy", rows["to_ready"])
row("hostd: API call -> ack recorded", rows["to_ack"])
row("bare: `docker run -d` returns", base["run"])
row("bare: `docker run -d` -> healthy", base["to_healthy"])
for phase in phases:
    row(f"hostd step: {phase}", rows[phase])
print()
print(f"difference of p50s, sent -> healthy vs bare -> healthy: "
      f"{ms(p50(rows['daemon_to_ready']) - p50(base['to_healthy']))} ms; "
      f"sent -> acked vs bare: {ms(p50(rows['daemon_to_ack']) - p50(base['to_healthy']))} ms")
PY
