#!/usr/bin/env bash
# The server killed with SIGKILL under heartbeat load and started again on the same SQLite
# database after an outage; the simulated hosts keep heartbeating (and re-sending their
# unconfirmed acks) throughout, and a deployer keeps queueing stop/start commands.
#
#   scripts/chaos/server-restart.sh [outage-seconds] [hosts]      default: 5 s, 1000 hosts
#
# Hosts heartbeat every 5 s (the heartbeat_load example; scripts/bench-load.sh describes it).
# The kill lands 15 s into the run. Printed afterwards: the generator's line (heartbeats
# that failed while the server was down, and how many hosts ended on a successful
# heartbeat), then every stop/start command by final status as the database holds it. The
# scenario passes when every host's last heartbeat succeeded and every queued command was
# acked (or superseded): nothing pending, sent, expired or lost, except that with an outage
# of five minutes or more the commands the daemons never received expire, by design. A
# delivered command must be acked whatever the outage. Exit status 0 means it passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
outage="${1:-5}"
hosts="${2:-1000}"
port="${SPAREBOX_CHAOS_PORT:-18290}"
target="${CARGO_TARGET_DIR:-target}"
bin="$target/release"
server_bin="${SPAREBOX_CHAOS_SERVER:-$bin/sparebox-server}"
cargo build --release -q -p sparebox-server --features postgres --bin sparebox-server --example heartbeat_load

data="$(mktemp -d)"
server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$data"' EXIT
SPAREBOX_ENCRYPTION_KEY="$(openssl rand -hex 32)"
export SPAREBOX_ENCRYPTION_KEY
db="$data/sparebox.db"

start_server() {
  RUST_LOG=warn "$server_bin" --listen "127.0.0.1:$port" --data-dir "$data" --database "$db" \
    >>"$data/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}

"$bin/examples/heartbeat_load" seed --database "$db" --hosts "$hosts" --keys "$data/keys.txt"
start_server
echo "load average:$(uptime | sed 's/.*load average://')"
"$bin/examples/heartbeat_load" run --server "http://127.0.0.1:$port" --keys "$data/keys.txt" \
  --interval-ms 5000 --duration-s $((outage + 45)) --commands-per-s 5 >"$data/run.txt" 2>&1 &
load=$!
sleep 15
kill -KILL "$server"
wait "$server" 2>/dev/null || true
echo "server killed; down for $outage s"
sleep "$outage"
start_server
echo "server restarted"
wait "$load" || true
cat "$data/run.txt"

summary="$(sqlite3 "$db" "SELECT status, count(*) FROM agent_commands \
  WHERE kind IN ('stop', 'start') GROUP BY status ORDER BY status")"
echo "stop/start commands by status:" $summary
queued="$(grep -o 'commands_queued=[0-9]*' "$data/run.txt" | cut -d= -f2)"
acked="$(sqlite3 "$db" "SELECT count(*) FROM agent_commands WHERE kind IN ('stop', 'start') AND status IN ('acked', 'superseded')")"
unfinished="$(sqlite3 "$db" "SELECT count(*) FROM agent_commands WHERE status <> 'acked' AND status <> 'superseded'")"
# Commands never delivered expire by design once the outage outlasts the five-minute expiry;
# a delivered one must always end acked.
undelivered_expired="$(sqlite3 "$db" "SELECT count(*) FROM agent_commands WHERE status = 'expired' AND sent_at IS NULL")"
delivered_lost="$(sqlite3 "$db" "SELECT count(*) FROM agent_commands WHERE sent_at IS NOT NULL AND status NOT IN ('acked', 'superseded')")"
hosts_ok="$(grep -o 'hosts_last_heartbeat_ok=[0-9]*' "$data/run.txt" | cut -d= -f2)"
echo "queued=$queued acked_or_superseded=$acked not_acked=$unfinished" \
  "(never delivered and expired: $undelivered_expired; delivered but not acked: $delivered_lost)" \
  "hosts_back=$hosts_ok/$hosts"
allowed=0
[ "$outage" -lt 300 ] || allowed="$undelivered_expired"
[ "$hosts_ok" = "$hosts" ] && [ "$delivered_lost" = 0 ] && [ "$unfinished" = "$allowed" ] \
  && [ "$((acked + allowed))" = "$queued" ]
