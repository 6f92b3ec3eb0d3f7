#!/usr/bin/env bash
# Makes sure Debian's Chromium and its WebDriver are installed, for the dashboard's browser
# test (sparebox-hostd/tests/dashboard.rs drives /usr/bin/chromium headless through
# /usr/bin/chromedriver).
#
# Usage: scripts/ensure-chromium.sh
#
# Meant for a fresh Debian 12 machine, run as root. Idempotent: does nothing when both
# binaries are already there.
set -euo pipefail

say() { echo "ensure-chromium: $*"; }
die() { echo "ensure-chromium: error: $*" >&2; exit 1; }

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    say "$(/usr/bin/chromium --version 2>/dev/null | head -n1) and $(/usr/bin/chromedriver --version | head -n1) present"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "chromium or chromedriver is missing and installing them needs root"
export DEBIAN_FRONTEND=noninteractive
say "installing chromium and chromium-driver"
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || die "the packages did not install /usr/bin/chromium and /usr/bin/chromedriver"
say "$(/usr/bin/chromedriver --version | head -n1) installed"
