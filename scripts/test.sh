#!/usr/bin/env bash
# Runs every Sparebox test on a Debian machine, setting up what the tests need first:
# a Docker engine and Podman's API service with the local agent image, a real OpenClaw
# (npm) with a locally built OpenClaw image, and a PostgreSQL server on a loopback port.
# Usage: scripts/test.sh [extra cargo nextest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "checking toolchain"
command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

if [ "$(id -u)" = 0 ] && [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  step "refreshing the package lists"
  apt-get update -qq
fi

step "starting the Docker engine"
bash scripts/ensure-docker.sh

step "building the local agent test images (healthy, and one that never becomes healthy)"
bash scripts/build-agent-image.sh
bash scripts/build-agent-image.sh --unhealthy

step "starting Podman's API service"
bash scripts/ensure-podman.sh

step "installing a real OpenClaw (Node 24 and openclaw from npm) and building its image"
bash scripts/install-openclaw.sh
bash scripts/build-openclaw-image.sh

step "installing Chromium and chromedriver for the dashboard's browser test"
bash scripts/ensure-chromium.sh

step "starting PostgreSQL"
SPAREBOX_TEST_POSTGRES_URL=$(bash scripts/start-postgres.sh | tail -n 1)
export SPAREBOX_TEST_POSTGRES_URL
echo "PostgreSQL at $SPAREBOX_TEST_POSTGRES_URL"

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "tests"
cargo nextest run --workspace --all-features --no-fail-fast "$@"

step "heartbeat load harness, short run (asserts only that every heartbeat got a 200)"
bash scripts/bench-load.sh --short

step "documentation tests"
cargo test --workspace --all-features --doc

# Last, because it stops and starts the Docker engine under everything that uses it.
if [ "$(id -u)" = 0 ]; then
  step "the host daemon across a Docker engine restart"
  bash scripts/test-engine-restart.sh
else
  step "skipping the engine-restart test (restarting dockerd needs root)"
fi
