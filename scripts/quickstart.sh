#!/usr/bin/env bash
# The whole Sparebox loop on one machine: a server on its embedded SQLite database, a host
# daemon against the local Docker engine, and one agent deployed into a real container.
#
#   scripts/quickstart.sh          set up, start everything, deploy one agent, show it
#   scripts/quickstart.sh stop     stop the server and the daemon it started (agents too)
#
# Everything lives in ./.sparebox (database, generated key, logs, the daemon's data).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE="$ROOT/.sparebox"
PORT="${SPAREBOX_QUICKSTART_PORT:-8787}"
SERVER="http://127.0.0.1:$PORT"
OFFICIAL_IMAGE="ghcr.io/openclaw/openclaw:2026.9.6"
LOCAL_IMAGE="sparebox-agent-test:local"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

stop_all() {
  for name in hostd server; do
    if [ -f "$STATE/$name.pid" ]; then
      kill "$(cat "$STATE/$name.pid")" 2>/dev/null || true
      rm -f "$STATE/$name.pid"
    fi
  done
}

if [ "${1:-}" = "stop" ]; then
  if [ -f "$STATE/agent.id" ] && [ -f "$STATE/token" ]; then
    curl -fsS -X POST -H "Authorization: Bearer $(cat "$STATE/token")" -H 'content-type: application/json' \
      -d '{"type":"undeploy"}' "$SERVER/api/v1/agents/$(cat "$STATE/agent.id")/commands" >/dev/null 2>&1 \
      && { echo "undeploy queued; giving the daemon a few seconds"; sleep 5; } || true
  fi
  stop_all
  echo "stopped the quickstart's server and host daemon"
  exit 0
fi

command -v python3 >/dev/null || fail "python3 is needed to read the API's JSON"
command -v curl >/dev/null || fail "curl is needed to call the API"
command -v cargo >/dev/null || fail "cargo is needed: install Rust (rustup) first"

step "1/6 container engine"
bash scripts/ensure-docker.sh

step "2/6 agent image"
if docker image inspect "$OFFICIAL_IMAGE" >/dev/null 2>&1; then
  IMAGE="$OFFICIAL_IMAGE"
  echo "using the official OpenClaw image $IMAGE"
else
  echo "the official image $OFFICIAL_IMAGE is not on this machine; building the local test image"
  bash scripts/build-agent-image.sh "$LOCAL_IMAGE"
  IMAGE="$LOCAL_IMAGE"
fi

step "3/6 building sparebox-server and sparebox-hostd"
cargo build --bins -p sparebox-server -p sparebox-hostd

step "4/6 starting the server on $SERVER (SQLite in $STATE)"
stop_all
mkdir -p "$STATE"
SPAREBOX_LOG=${RUST_LOG:-info}
RUST_LOG=$SPAREBOX_LOG nohup target/debug/sparebox-server --listen "127.0.0.1:$PORT" \
  --data-dir "$STATE/server" --agent-image "$IMAGE" --allow-generated-key \
  --heartbeat-interval 5 >"$STATE/server.log" 2>&1 &
echo $! >"$STATE/server.pid"
for _ in $(seq 1 50); do curl -fsS "$SERVER/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$SERVER/healthz" >/dev/null || fail "the server did not start; see $STATE/server.log"

# A fresh account per run: the email is unique, the password random (sign in is not needed,
# the script uses the API token the sign-up returns).
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
TOKEN=$(curl -fsS -H 'content-type: application/json' -d "{
  \"email\": \"quickstart-$(date +%s)@example.com\", \"password\": \"$PASSWORD\",
  \"roles\": [\"host_owner\", \"deployer\"]
}" "$SERVER/api/v1/users" | json 'd["apiToken"]')
echo "$TOKEN" >"$STATE/token"
HOST=$(curl -fsS -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"name":"this machine"}' "$SERVER/api/v1/hosts")
HOST_ID=$(echo "$HOST" | json 'd["host"]["id"]')
HOST_KEY=$(echo "$HOST" | json 'd["hostKey"]')
echo "signed up; host $HOST_ID registered"

step "5/6 starting the host daemon"
RUST_LOG=$SPAREBOX_LOG SPAREBOX_HOST_KEY="$HOST_KEY" nohup target/debug/sparebox-hostd run \
  --server "$SERVER" --data-dir "$STATE/hostd" >"$STATE/hostd.log" 2>&1 &
echo $! >"$STATE/hostd.pid"
for _ in $(seq 1 100); do
  ONLINE=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$SERVER/api/v1/hosts" \
    | json "[h for h in d if h['id']=='$HOST_ID'][0]['online']")
  [ "$ONLINE" = "True" ] && break
  sleep 0.2
done
[ "$ONLINE" = "True" ] || fail "the daemon did not report in; see $STATE/hostd.log"
echo "host daemon online"

step "6/6 deploying a Standard agent"
AGENT=$(curl -fsS -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "{
  \"hostId\": \"$HOST_ID\", \"tier\": \"standard\", \"name\": \"quickstart agent\",
  \"openclawConfig\": {},
  \"workspaceFiles\": [{\"path\": \"SOUL.md\", \"content\": \"You are a helpful assistant.\"}]
}" "$SERVER/api/v1/agents")
AGENT_ID=$(echo "$AGENT" | json 'd["agent"]["id"]')
echo "$AGENT_ID" >"$STATE/agent.id"
LAST=""
for _ in $(seq 1 600); do
  VIEW=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$SERVER/api/v1/agents/$AGENT_ID")
  STATUS=$(echo "$VIEW" | json 'd["state"] + ((" (" + d["deployStage"] + ", " + str(d["deployProgress"]) + "%)") if d.get("deployStage") else "")')
  if [ "$STATUS" != "$LAST" ]; then echo "  agent: $STATUS"; LAST=$STATUS; fi
  case "$STATUS" in
    running*) break ;;
    error*) fail "deploy failed: $(echo "$VIEW" | json 'd["error"]'); see $STATE/hostd.log" ;;
  esac
  sleep 0.5
done
case "$LAST" in running*) ;; *) fail "the agent did not reach running; see $STATE/hostd.log" ;; esac
# Wait for the first status report with metrics.
for _ in $(seq 1 40); do
  VIEW=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$SERVER/api/v1/agents/$AGENT_ID")
  [ "$(echo "$VIEW" | json 'd["metrics"]["ramUsageMb"] is not None')" = "True" ] && break
  sleep 0.5
done
echo "$VIEW" | python3 -c '
import json, sys
d = json.load(sys.stdin)
m = d["metrics"]
print(f"""
Agent {d["id"]} is {d["state"]} on tier {d["tier"]} (image {d["image"]})
  CPU {m["cpuPercent"]}%   RAM {m["ramUsageMb"]} MiB of {m["ramLimitMb"]} MiB   uptime {m["uptimeSeconds"]} s   restarts {m["restartCount"]}
  isolation verified: {d["isolationVerified"]}""")'
echo "  container: $(docker ps --filter "label=dev.sparebox.agent-id=$AGENT_ID" --format '{{.Names}} ({{.Status}}, {{.Ports}})')"

cat <<NEXT

Next steps (the server and daemon keep running in the background):
  export SPAREBOX_TOKEN=$TOKEN
  curl -s -H "Authorization: Bearer \$SPAREBOX_TOKEN" $SERVER/api/v1/agents/$AGENT_ID
  curl -s -H "Authorization: Bearer \$SPAREBOX_TOKEN" -H 'content-type: application/json' \\
       -d '{"type":"stop"}' $SERVER/api/v1/agents/$AGENT_ID/commands      # or start, restart, undeploy
  curl -s -H "Authorization: Bearer \$SPAREBOX_TOKEN" $SERVER/api/v1/agents/$AGENT_ID/commands
  curl -s -H "Authorization: Bearer \$SPAREBOX_TOKEN" $SERVER/api/v1/agents/$AGENT_ID/events
Logs: $STATE/server.log and $STATE/hostd.log
Stop everything (undeploys the agent): scripts/quickstart.sh stop
NEXT
