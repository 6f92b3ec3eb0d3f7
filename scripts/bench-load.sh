#!/usr/bin/env bash
# Sustained heartbeat load: seeds a fresh database with hosts and running agents (0 to 8 per
# host) through the platform logic (or copies of platform-seeded hosts, see --seed), starts a
# release sparebox-server on it (loopback only), then runs the heartbeat_load example against
# it once per host count and prints one line of figures per run, with the machine's load
# average before it.
#
#   scripts/bench-load.sh [options] [hosts...]       default: 10000 hosts
#     --postgres URL      use a fresh database `sparebox_load` on that PostgreSQL server
#                         (recreated; the URL names any existing database to connect to)
#     --interval-ms MS    heartbeat interval of every simulated host (default 60000); a
#                         comma-separated list runs once per interval on the same database
#     --duration-s S      how long each run lasts (default 60)
#     --commands-per-s N  stop/start commands queued through the API meanwhile (default 5)
#     --short             a few hundred hosts for a few seconds on SQLite with a debug build:
#                         checks that the harness runs and that every heartbeat got a 200
#     --seed MODE         how the database is seeded: `platform` (every host through the
#                         platform logic, about 110 hosts/s on SQLite), `fast` (nine template
#                         hosts through the platform, the others copied from them in SQL by
#                         sqlite3 or psql: the same rows, thousands of hosts/s), or `auto`
#                         (default: platform up to 2000 hosts, fast above)
#   SPAREBOX_BENCH_SERVER  a sparebox-server binary to measure instead of the one built here
#
# Each host count gets a freshly seeded database and its own server, so hosts of an earlier
# run that fell silent do not load the next one. Exits non-zero when any heartbeat got
# anything but a 200.
set -euo pipefail
cd "$(dirname "$0")/.."

interval_ms=60000
duration_s=60
commands_per_s=5
postgres=""
seed_mode=auto
profile=release
hosts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) postgres="$2"; shift 2 ;;
    --interval-ms) interval_ms="$2"; shift 2 ;;
    --duration-s) duration_s="$2"; shift 2 ;;
    --commands-per-s) commands_per_s="$2"; shift 2 ;;
    --seed) seed_mode="$2"; shift 2 ;;
    --short) profile=debug; hosts=(300); interval_ms=1000; duration_s=4; commands_per_s=5; shift ;;
    --*) echo "unknown option $1" >&2; exit 2 ;;
    *) hosts+=("$1"); shift ;;
  esac
done
[ "${#hosts[@]}" -gt 0 ] || hosts=(10000)
port="${SPAREBOX_BENCH_PORT:-18090}"
target="${CARGO_TARGET_DIR:-target}"
data="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$data"' EXIT

build=(cargo build -q -p sparebox-server --features postgres --bin sparebox-server --example heartbeat_load)
[ "$profile" = release ] && build+=(--release)
"${build[@]}"
bin="$target/$profile"
server_bin="${SPAREBOX_BENCH_SERVER:-$bin/sparebox-server}"

SPAREBOX_ENCRYPTION_KEY="$(openssl rand -hex 32)"
export SPAREBOX_ENCRYPTION_KEY

# Seeds a fresh database with $1 hosts and starts a server on it.
start_server() {
  local n="$1" dir="$data/$1"
  mkdir -p "$dir"
  database="$dir/sparebox.db"
  if [ -n "$postgres" ]; then
    psql -q "$postgres" -c 'DROP DATABASE IF EXISTS sparebox_load' -c 'CREATE DATABASE sparebox_load'
    database="${postgres%/*}/sparebox_load"
  fi
  local seed=(seed --database "$database" --hosts "$n" --keys "$dir/keys.txt")
  case "$seed_mode" in
    fast) seed+=(--fast) ;;
    auto) if [ "$n" -gt 2000 ]; then seed+=(--fast); fi ;;
    platform) ;;
    *) echo "unknown seed mode $seed_mode" >&2; exit 2 ;;
  esac
  "$bin/examples/heartbeat_load" "${seed[@]}"
  RUST_LOG=warn "$server_bin" --listen "127.0.0.1:$port" --data-dir "$dir" \
    --database "$database" >"$dir/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}

status=0
for n in "${hosts[@]}"; do
  start_server "$n"
  for interval in ${interval_ms//,/ }; do
    echo "load average before $n hosts every $interval ms:$(uptime | sed 's/.*load average://')"
    "$bin/examples/heartbeat_load" run --server "http://127.0.0.1:$port" --keys "$data/$n/keys.txt" \
      --interval-ms "$interval" --duration-s "$duration_s" \
      --commands-per-s "$commands_per_s" || status=1
  done
  if ! kill "$server" 2>/dev/null; then
    echo "the server died:" >&2
    tail -n 20 "$data/$n/server.log" >&2
    status=1
  fi
  wait "$server" 2>/dev/null || true
  server=""
done
exit "$status"
