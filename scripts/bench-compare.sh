#!/usr/bin/env bash
# Compares sparebox-server builds under the same heartbeat load, on the same seeded SQLite
# database: the way to tell whether a change to the heartbeat path helps.
#
#   scripts/bench-compare.sh [options] SEEDED_DIR SERVER_BIN...
#     SEEDED_DIR          holds sparebox.db and keys.txt from
#                         `heartbeat_load seed --database DIR/sparebox.db --keys DIR/keys.txt`
#                         (made with SPAREBOX_ENCRYPTION_KEY set to the key this script uses)
#     --interval-ms MS    heartbeat interval of every simulated host (default 60000); a
#                         comma-separated list runs each server once per interval
#     --duration-s S      how long each run lasts (default 30)
#     --rounds N          run the whole comparison N times, alternating servers (default 1)
#     --silent-idle       no load instead: every host is left as silent as the seeding made
#                         it (so the sweep marks all their agents host offline), and the
#                         server's CPU is measured while idle over the duration, after a
#                         first minute in which that marking happens
#   SPAREBOX_ENCRYPTION_KEY   the key the database was seeded with (required)
#   SPAREBOX_BENCH_LOAD       the heartbeat_load binary (default target/release/examples/heartbeat_load)
#
# Every run gets a fresh copy of the seeded database with every host's last heartbeat set
# to the start time (so no host starts out silent), its own server on loopback
# (RUST_LOG=warn), and the load generator beside it. Besides the generator's own line it
# prints the server's CPU time per heartbeat served (user + system from /proc/PID/stat
# over the run, background work included), the figure least disturbed by other load on
# the machine, the generator's own CPU time per heartbeat (sampled until it exits), and
# the load average before the run.
set -euo pipefail

interval_ms=60000
duration_s=30
rounds=1
silent_idle=""
while [ $# -gt 0 ]; do
  case "$1" in
    --interval-ms) interval_ms="$2"; shift 2 ;;
    --duration-s) duration_s="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --silent-idle) silent_idle=1; shift ;;
    --*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
seeded="$(cd "$1" && pwd)"; shift
servers=()
for server in "$@"; do servers+=("$(cd "$(dirname "$server")" && pwd)/$(basename "$server")"); done
: "${SPAREBOX_ENCRYPTION_KEY:?set SPAREBOX_ENCRYPTION_KEY to the key the database was seeded with}"
load="${SPAREBOX_BENCH_LOAD:-$(pwd)/target/release/examples/heartbeat_load}"
[ -x "$load" ] || { echo "no load generator at $load (cargo build --release -p sparebox-server --example heartbeat_load)" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "sqlite3 is needed" >&2; exit 2; }
port="${SPAREBOX_BENCH_PORT:-18091}"
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
ticks="$(getconf CLK_TCK)"

# CPU time (clock ticks) a process has used: utime + stime.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

status=0
for round in $(seq 1 "$rounds"); do
  for interval in ${interval_ms//,/ }; do
    for bin in "${servers[@]}"; do
      rm -rf "$work/data"; mkdir -p "$work/data"
      sqlite3 "$seeded/sparebox.db" ".backup '$work/data/sparebox.db'"
      if [ -z "$silent_idle" ]; then
        now_us=$(( $(date +%s%N) / 1000 ))
        sqlite3 "$work/data/sparebox.db" "UPDATE hosts SET last_heartbeat_at = $now_us"
      fi
      (cd / && RUST_LOG=warn exec "$bin" --listen "127.0.0.1:$port" --data-dir "$work/data" \
        --database "$work/data/sparebox.db" >"$work/server.log" 2>&1) &
      server=$!
      for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
      if [ -n "$silent_idle" ]; then
        sleep 60
        before="$(cpu_ticks "$server")"
        sleep "$duration_s"
        after="$(cpu_ticks "$server")"
        marked="$(sqlite3 "$work/data/sparebox.db" "SELECT COUNT(*) FROM agents WHERE state = 'host_offline'")"
        echo "round $round, $bin, silent hosts, idle: $marked agents host offline"
        awk -v t="$((after - before))" -v hz="$ticks" -v s="$duration_s" \
          'BEGIN { printf "server CPU while idle: %.1f %% of a core\n", 100 * t / hz / s }'
        kill "$server"; wait "$server" 2>/dev/null || true; server=""
        continue
      fi
      before="$(cpu_ticks "$server")"
      echo "round $round, $bin, every $interval ms, load average before:$(uptime | sed 's/.*load average://')"
      "$load" run --server "http://127.0.0.1:$port" --keys "$seeded/keys.txt" \
        --interval-ms "$interval" --duration-s "$duration_s" --commands-per-s 5 \
        >"$work/load.txt" &
      generator=$!
      gen_ticks=0
      while kill -0 "$generator" 2>/dev/null; do
        gen_ticks="$(cpu_ticks "$generator" 2>/dev/null || echo "$gen_ticks")"
        sleep 0.2
      done
      wait "$generator" || status=1
      after="$(cpu_ticks "$server")"
      line="$(cat "$work/load.txt")"
      echo "$line"
      ok="$(sed -n 's/.*heartbeats_ok=\([0-9]*\).*/\1/p' <<<"$line" | head -n 1)"
      awk -v t="$((after - before))" -v g="$gen_ticks" -v hz="$ticks" -v ok="${ok:-0}" \
        'BEGIN { if (ok > 0) printf "server CPU: %.2f s, %.3f ms per heartbeat; generator CPU: %.3f ms per heartbeat\n", t / hz, 1000 * t / hz / ok, 1000 * g / hz / ok }'
      kill "$server"; wait "$server" 2>/dev/null || true; server=""
    done
  done
done
exit "$status"
