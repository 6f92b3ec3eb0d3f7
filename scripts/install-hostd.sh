#!/usr/bin/env bash
# Installs the Sparebox host daemon on a Linux host as a systemd service.
#
# Usage: scripts/install-hostd.sh [--dry-run] [--server URL] [BINARY]
#
#   BINARY     a built sparebox-hostd to install; without it the script runs
#              `cargo install --path sparebox-hostd` from this repository
#   --server   the server URL to show in the enroll command (default https://sparebox.example)
#   --dry-run  print every step instead of doing it (no root needed)
#
# What it does, as root:
#   1. finds how agents will be isolated: Docker (its socket answers), else Podman
#      (/run/podman/podman.sock), else explains the profile fallback: agents as plain
#      OpenClaw processes with no resource, filesystem or network isolation;
#   2. installs the binary to $PREFIX/bin/sparebox-hostd (PREFIX defaults to /usr/local);
#   3. writes /etc/systemd/system/sparebox-hostd.service (Restart=always, after the
#      container engine, runs `sparebox-hostd run` with /etc/sparebox/hostd.toml) and
#      enables it;
#   4. prints the enroll command, which checks the host key and writes the config file.
#      Start the service after enrolling: systemctl start sparebox-hostd
set -euo pipefail

dry_run=0
server="https://sparebox.example"
binary=""
prefix="${PREFIX:-/usr/local}"
unit_path="${SPAREBOX_UNIT_PATH:-/etc/systemd/system/sparebox-hostd.service}"
config_path="/etc/sparebox/hostd.toml"
repo="$(cd "$(dirname "$0")/.." && pwd)"

say() { echo "install-hostd: $*"; }
die() { echo "install-hostd: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --server) shift; [ $# -gt 0 ] || die "--server needs a URL"; server="$1" ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) binary="$1" ;;
    esac
    shift
done

# Runs a command, or prints it in a dry run.
run() {
    if [ "$dry_run" -eq 1 ]; then
        echo "would run: $*"
    else
        "$@"
    fi
}

# Writes stdin to a file, or prints it in a dry run.
write_file() {
    local path="$1" mode="$2"
    if [ "$dry_run" -eq 1 ]; then
        echo "would write $path (mode $mode):"
        sed 's/^/    /'
    else
        install -d -m 0755 "$(dirname "$path")"
        local tmp
        tmp="$(mktemp "$path.XXXXXX")"
        cat >"$tmp"
        chmod "$mode" "$tmp"
        mv "$tmp" "$path"
    fi
}

[ "$(uname -s)" = "Linux" ] || die "sparebox-hostd runs on Linux hosts only"
if [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or pass --dry-run to see what would happen)"
fi

# 1. Isolation.
engine="none"
after="network-online.target"
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine="docker"
    after="network-online.target docker.service"
    say "Docker answers: each agent gets a hardened container"
elif [ -S /run/podman/podman.sock ] && command -v curl >/dev/null 2>&1 \
    && curl -fsS --unix-socket /run/podman/podman.sock http://d/_ping >/dev/null 2>&1; then
    engine="podman"
    after="network-online.target podman.socket"
    say "Podman answers: each agent gets a hardened container (one isolated network each)"
else
    say "neither Docker nor Podman answers on this host."
    say "  The daemon then falls back to profile mode when an openclaw binary is installed:"
    say "  agents run as plain processes of the daemon's user with NO memory, CPU, filesystem"
    say "  or network isolation, and can read each other's files and secrets."
    say "  Install Docker (apt-get install docker.io) or Podman for real isolation."
fi

# 2. The binary.
target="$prefix/bin/sparebox-hostd"
if [ -n "$binary" ]; then
    [ -x "$binary" ] || [ "$dry_run" -eq 1 ] || die "$binary is not an executable file"
    run install -D -m 0755 "$binary" "$target"
else
    command -v cargo >/dev/null 2>&1 || [ "$dry_run" -eq 1 ] \
        || die "no binary given and no cargo to build one"
    run cargo install --locked --path "$repo/sparebox-hostd" --root "$prefix"
fi

# 3. The service.
write_file "$unit_path" 0644 <<UNIT
[Unit]
Description=Sparebox host daemon (runs OpenClaw agents for the Sparebox platform)
Wants=network-online.target
After=$after

[Service]
Type=simple
ExecStart=$target run --config $config_path
Restart=always
RestartSec=5
# Agents keep running when the daemon stops; only the daemon's own process is stopped.
KillMode=process
TimeoutStopSec=30
Environment=RUST_LOG=info

[Install]
WantedBy=multi-user.target
UNIT
run systemctl daemon-reload
run systemctl enable sparebox-hostd.service

# 4. Enrolling.
say "isolation: $engine; binary: $target; unit: $unit_path"
say "now enroll this host with the key the server showed when you registered it:"
echo
echo "    sudo $target enroll --server $server --key <HOST KEY> --config $config_path"
echo "    sudo systemctl start sparebox-hostd"
echo
