#!/usr/bin/env bash
# The real host daemon killed with SIGKILL at a random moment of each of N command cycles,
# against a real server (SQLite) and the real Docker engine, and started again each time.
#
#   scripts/chaos/hostd-kill-cycles.sh [cycles] [seed]        default: 100 cycles, seed 1
#
# Each cycle queues one command on one of the agents (deploy of a new agent, stop, start,
# restart, update_config, or undeploy), waits a random 0 to 2.5 s, kills the daemon with
# SIGKILL, starts it again on the same data directory, and waits until the command is
# answered. Afterwards it counts, from the server's database and the engine:
#   lost       commands never answered (still pending or sent, or expired)
#   failed     commands answered as failed (none of these should fail)
#   duplicate  agents with more than one container at the end of a cycle, and deploys
#              acked more often than `deployed` events say
#   orphans    containers left for agents the server has undeployed
# It exits 0 when all four are zero. Needs Docker and the local agent image
# (scripts/ensure-docker.sh, scripts/build-agent-image.sh), curl, jq and sqlite3. Builds
# the debug binaries. Run it alone: it uses the port range 27000-27999 and port 18291.
set -euo pipefail
cd "$(dirname "$0")/../.."
cycles="${1:-100}"
RANDOM="${2:-1}"
port="${SPAREBOX_CHAOS_PORT:-18291}"
server_url="http://127.0.0.1:$port"
image="sparebox-agent-test:local"
target="${CARGO_TARGET_DIR:-target}"
cargo build -q -p sparebox-server -p sparebox-hostd --bins
bin="$(cd "$target/debug" && pwd)"

data="$(mktemp -d)"
server=""
hostd=""
cleanup() {
  [ -z "$hostd" ] || kill -KILL "$hostd" 2>/dev/null || true
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  for agent in $(sqlite3 "$data/server/sparebox.db" "SELECT id FROM agents" 2>/dev/null); do
    docker ps -aq --filter "label=dev.sparebox.agent-id=$agent" | xargs -r docker rm -f >/dev/null
  done
  rm -rf "$data"
}
trap cleanup EXIT

RUST_LOG=warn "$bin/sparebox-server" --listen "127.0.0.1:$port" --data-dir "$data/server" \
  --agent-image "$image" --allow-generated-key --heartbeat-interval 1 >"$data/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -fsS "$server_url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
db="$data/server/sparebox.db"

token=$(curl -fsS -H 'content-type: application/json' -d '{
  "email": "chaos@example.com", "password": "a long chaos passphrase",
  "roles": ["host_owner", "deployer"]}' "$server_url/api/v1/users" | jq -r .apiToken)
host=$(curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"chaos host"}' "$server_url/api/v1/hosts")
host_id=$(jq -r .host.id <<<"$host")
host_key=$(jq -r .hostKey <<<"$host")

api() { # method path [body]
  curl -sS -X "$1" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    ${3:+-d "$3"} "$server_url$2"
}

start_hostd() {
  (cd / && RUST_LOG=sparebox_hostd=info SPAREBOX_HOST_KEY="$host_key" exec "$bin/sparebox-hostd" run \
    --runtime docker --server "$server_url" --data-dir "$data/hostd" \
    --config "$data/hostd.toml" --port-range-start 27000 --heartbeat-interval 1 \
    >>"$data/hostd.log" 2>&1) &
  hostd=$!
}

deploy_agent() {
  api POST /api/v1/agents "{\"hostId\": \"$host_id\", \"tier\": \"lite\", \"name\": \"chaos\",
    \"openclawConfig\": {}, \"workspaceFiles\": [{\"path\": \"SOUL.md\", \"content\": \"v0\"}]}" |
    jq -r '.command.id // ("refused: " + .error.message)'
}

state_of() { api GET "/api/v1/agents/$1" | jq -r .state; }

start_hostd
for _ in $(seq 1 100); do
  [ "$(api GET /api/v1/hosts | jq -r ".[] | select(.id == \"$host_id\") | .online")" = true ] && break
  sleep 0.2
done

duplicates=0
echo "load average:$(uptime | sed 's/.*load average://')"
started=$(date +%s)
for cycle in $(seq 1 "$cycles"); do
  mapfile -t agents < <(sqlite3 "$db" "SELECT id FROM agents WHERE state IN ('running', 'stopped') ORDER BY created_at")
  agent="${agents[RANDOM % (${#agents[@]} + 1)]:-}"
  if [ -z "$agent" ] || { [ "${#agents[@]}" -lt 2 ] && [ $((RANDOM % 4)) = 0 ]; }; then
    kind=deploy
    command=$(deploy_agent)
  else
    case "$(state_of "$agent")" in
      running) options=(stop restart update_config update_config undeploy) ;;
      *) options=(start start update_config undeploy) ;;
    esac
    kind="${options[RANDOM % ${#options[@]}]}"
    # Keep at least one agent around.
    [ "$kind" = undeploy ] && [ "${#agents[@]}" -lt 2 ] && kind=update_config
    if [ "$kind" = update_config ]; then
      command=$(api PUT "/api/v1/agents/$agent/config" \
        "{\"workspaceFiles\": [{\"path\": \"SOUL.md\", \"content\": \"cycle $cycle\"}]}" | jq -r '.command.id // empty')
    else
      command=$(api POST "/api/v1/agents/$agent/commands" "{\"type\": \"$kind\"}" | jq -r '.id // empty')
    fi
  fi
  if [ -z "$command" ] || [ "${command#refused}" != "$command" ]; then
    echo "cycle $cycle: $kind ${command:-refused}; skipped"
    continue
  fi
  delay="$((RANDOM % 26))"
  sleep "$((delay / 10)).$((delay % 10))"
  kill -KILL "$hostd"
  wait "$hostd" 2>/dev/null || true
  start_hostd
  status=""
  for _ in $(seq 1 360); do
    status=$(sqlite3 "$db" "SELECT status FROM agent_commands WHERE id = '$command'")
    case "$status" in acked | failed | expired | superseded) break ;; esac
    sleep 0.25
  done
  # One container at most per agent the server still has.
  for live in $(sqlite3 "$db" "SELECT id FROM agents WHERE state <> 'undeployed'"); do
    count=$(docker ps -aq --filter "label=dev.sparebox.agent-id=$live" | wc -l)
    if [ "$count" -gt 1 ]; then
      duplicates=$((duplicates + 1))
      echo "cycle $cycle: agent $live has $count containers"
    fi
  done
  echo "cycle $cycle: $kind, daemon killed $((delay / 10)).$((delay % 10)) s after queueing -> $status"
done
elapsed=$(($(date +%s) - started))

lost=$(sqlite3 "$db" "SELECT count(*) FROM agent_commands WHERE status IN ('pending', 'sent', 'expired')")
failed=$(sqlite3 "$db" "SELECT count(*) FROM agent_commands WHERE status = 'failed'")
sqlite3 "$db" "SELECT kind, status, count(*) FROM agent_commands GROUP BY kind, status ORDER BY kind, status" |
  sed 's/^/commands: /'
sqlite3 "$db" "SELECT '  failed ' || kind || ': ' || coalesce(error, '') FROM agent_commands WHERE status = 'failed'"
deploys_acked=$(sqlite3 "$db" "SELECT count(*) FROM agent_commands WHERE kind = 'deploy' AND status = 'acked'")
deployed_events=$(sqlite3 "$db" "SELECT count(*) FROM agent_events WHERE kind = 'deployed'")
[ "$deployed_events" -le "$deploys_acked" ] || duplicates=$((duplicates + deployed_events - deploys_acked))
orphans=0
for id in $(docker ps -aq --filter "label=dev.sparebox.agent-id"); do
  agent=$(docker inspect --format '{{ index .Config.Labels "dev.sparebox.agent-id" }}' "$id")
  state=$(sqlite3 "$db" "SELECT state FROM agents WHERE id = '$agent'")
  # Containers of other runs or tests on this engine belong to other databases.
  [ -n "$(sqlite3 "$db" "SELECT 1 FROM agents WHERE id = '$agent'")" ] || continue
  if [ "$state" = undeployed ]; then
    orphans=$((orphans + 1))
    echo "orphan: container $id of undeployed agent $agent"
  fi
done
echo "cycles=$cycles seconds=$elapsed lost=$lost failed=$failed duplicate=$duplicates orphans=$orphans"
echo "load average:$(uptime | sed 's/.*load average://')"
[ "$lost" = 0 ] && [ "$failed" = 0 ] && [ "$duplicates" = 0 ] && [ "$orphans" = 0 ]
