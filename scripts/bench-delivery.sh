#!/usr/bin/env bash
# Command delivery latency with long-polling daemons: starts a release sparebox-server on
# a fresh SQLite database (loopback only), then runs the delivery_latency example against it.
#
#   scripts/bench-delivery.sh [hosts] [commands]      default: 10000 hosts, 500 commands
set -euo pipefail
cd "$(dirname "$0")/.."
hosts="${1:-10000}"
commands="${2:-500}"
port="${SPAREBOX_BENCH_PORT:-18080}"
data="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

bin="${CARGO_TARGET_DIR:-target}/release"
cargo build --release -q -p sparebox-server --bin sparebox-server --example delivery_latency
RUST_LOG=warn "$bin/sparebox-server" --listen "127.0.0.1:$port" --data-dir "$data" \
  --allow-generated-key >"$data/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/examples/delivery_latency" --server "http://127.0.0.1:$port" \
  --hosts "$hosts" --agents 100 --commands "$commands"
