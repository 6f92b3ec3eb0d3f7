#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 server for the Sparebox tests and prints its URL.
#
# Usage: scripts/start-postgres.sh          start (or find running) and print the URL
#        scripts/start-postgres.sh stop     stop the server started here
#
# Idempotent: when the server already answers it only prints the URL. Otherwise it creates
# a cluster in $SPAREBOX_PG_DIR (default /tmp/sparebox-pg) owned by the `postgres` user
# (initdb refuses to run as root), starts it on 127.0.0.1:$SPAREBOX_PG_PORT (default 55432)
# with trust authentication and waits until it accepts connections. Binaries come from
# $SPAREBOX_PG_BIN (default /usr/lib/postgresql/15/bin); when they are missing and this
# runs as root, Debian's postgresql-15 package is installed.
#
# The URL, postgres://postgres@127.0.0.1:PORT/postgres, is the only line on stdout, so
#   export SPAREBOX_TEST_POSTGRES_URL=$(scripts/start-postgres.sh)
# works; progress goes to stderr. The server is for tests only: anyone on this machine can
# connect without a password, and fsync is off (a crash may lose its data).
set -euo pipefail

port="${SPAREBOX_PG_PORT:-55432}"
data_dir="${SPAREBOX_PG_DIR:-/tmp/sparebox-pg}"
bin_dir="${SPAREBOX_PG_BIN:-/usr/lib/postgresql/15/bin}"
wait_secs="${SPAREBOX_PG_WAIT_SECS:-60}"
url="postgres://postgres@127.0.0.1:${port}/postgres"

say() { echo "start-postgres: $*" >&2; }
die() { echo "start-postgres: error: $*" >&2; exit 1; }

# Runs a command as the `postgres` user when we are root, as ourselves otherwise.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

answers() {
    "$bin_dir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres
}

if [ "${1:-start}" = "stop" ]; then
    if [ -f "$data_dir/postmaster.pid" ]; then
        as_owner "$bin_dir/pg_ctl" -D "$data_dir" -m fast -w stop >&2
    else
        say "no server running from $data_dir"
    fi
    exit 0
fi
[ "${1:-start}" = "start" ] || die "unknown argument ${1}: expected start or stop"

if [ ! -x "$bin_dir/initdb" ]; then
    [ "$(id -u)" -eq 0 ] || die "$bin_dir/initdb is missing; install postgresql-15 or set SPAREBOX_PG_BIN"
    say "installing postgresql-15"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq postgresql-15 >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq postgresql-15 >/dev/null; }
fi

if answers; then
    say "already running on port $port"
    echo "$url"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "the postgres system user is missing"
fi

if [ ! -f "$data_dir/PG_VERSION" ]; then
    say "creating a cluster in $data_dir"
    mkdir -p "$data_dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$data_dir"
    fi
    chmod 700 "$data_dir"
    as_owner "$bin_dir/initdb" -D "$data_dir" -A trust -U postgres --no-sync >/dev/null
fi

say "starting on 127.0.0.1:$port (log: $data_dir/server.log)"
as_owner "$bin_dir/pg_ctl" -D "$data_dir" -l "$data_dir/server.log" -w -t "$wait_secs" \
    -o "-p $port -k $data_dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >&2 || {
    tail -n 20 "$data_dir/server.log" >&2 || true
    die "the server did not start"
}

for _ in $(seq 1 "$wait_secs"); do
    if answers; then
        echo "$url"
        exit 0
    fi
    sleep 1
done
tail -n 20 "$data_dir/server.log" >&2 || true
die "the server did not answer on port $port within ${wait_secs}s"
