#!/usr/bin/env bash
# Builds a small stand-in for the OpenClaw agent image without pulling anything.
#
# Usage: scripts/build-agent-image.sh [--unhealthy] [TAG]
#        (TAG defaults to sparebox-agent-test:local, or sparebox-agent-test:unhealthy)
#
# The image holds a static busybox, a `node` user (uid 1000) and a tiny "gateway": busybox
# httpd on port 18789 answering `GET /healthz` with {"ok":true,"status":"live"}, like
# OpenClaw's gateway does. At start the gateway prints its environment (one `KEY=value`
# line each) to stdout, so tests can check that secrets never reach a deployer's logs.
# With --unhealthy, /healthz answers {"ok":false,"status":"broken"} instead: an image that
# never becomes healthy, for testing upgrades that must roll back. It runs as uid 1000 with a read-only root filesystem, all
# capabilities dropped, /home/node a tmpfs and /home/node/.openclaw bind-mounted from the
# host, which is how Sparebox's runtime starts agents.
#
# Steps: a root filesystem folder (busybox and its applet links, /etc/passwd, the gateway
# script and health file), `tar` + `docker import` as the base image, then a small
# Dockerfile FROM it (USER 1000, WORKDIR, ENTRYPOINT) built with `docker build`.
#
# Idempotent: when TAG exists and carries this script's image version label, it only says
# so. Set SPAREBOX_REBUILD=1 to rebuild anyway. The docker client honours DOCKER_HOST, so
# DOCKER_HOST=unix:///run/podman/podman.sock targets Podman's Docker-compatible socket.
set -euo pipefail

variant="healthy"
health_body='{"ok":true,"status":"live"}'
if [ "${1:-}" = "--unhealthy" ]; then
    variant="unhealthy"
    health_body='{"ok":false,"status":"broken"}'
    shift
fi
default_tag="sparebox-agent-test:local"
[ "$variant" = healthy ] || default_tag="sparebox-agent-test:unhealthy"
tag="${1:-$default_tag}"
base_tag="sparebox-agent-test-rootfs:local"
[ "$variant" = healthy ] || base_tag="sparebox-agent-test-rootfs:unhealthy"
# Bump when the image's content changes, so existing images are rebuilt.
image_version="2-$variant"
version_label="dev.sparebox.test-image-version"
gateway_port=18789

say() { echo "build-agent-image: $*"; }
die() { echo "build-agent-image: error: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "no docker client on PATH; run scripts/ensure-docker.sh"
docker info >/dev/null 2>&1 || die "no container engine answers${DOCKER_HOST:+ at $DOCKER_HOST}; run scripts/ensure-docker.sh"

previous_id="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
existing_version="$(docker image inspect --format "{{ index .Config.Labels \"$version_label\" }}" "$tag" 2>/dev/null || true)"
if [ "${SPAREBOX_REBUILD:-0}" != "1" ] && [ "$existing_version" = "$image_version" ]; then
    say "$tag already present (version $image_version); nothing to do"
    exit 0
fi

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

say "assembling root filesystem from $busybox_bin"
mkdir -p "$rootfs"/{bin,etc,tmp,srv/www,usr/local/bin,home/node/.openclaw}
cp "$busybox_bin" "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
chmod 1777 "$rootfs/tmp"

cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
node:x:1000:1000:node:/home/node:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
node:x:1000:
nogroup:x:65534:
EOF
printf '%s' "$health_body" >"$rootfs/srv/www/healthz"

cat >"$rootfs/usr/local/bin/gateway" <<EOF
#!/bin/sh
# Stand-in for \`openclaw gateway\`: serves /healthz on port $gateway_port in the foreground.
state="\${HOME:-/home/node}/.openclaw"
if ! date >"\$state/.gateway-started" 2>/dev/null; then
    echo "gateway: warning: \$state is not writable" >&2
fi
echo "gateway: environment:"
env | sort
echo "gateway: listening on $gateway_port as uid \$(id -u)"
exec httpd -f -p $gateway_port -h /srv/www
EOF
chmod 0755 "$rootfs/usr/local/bin/gateway"
chown -R 1000:1000 "$rootfs/home/node"

previous_base_id="$(docker image inspect --format '{{.Id}}' "$base_tag" 2>/dev/null || true)"
say "importing base image $base_tag"
tar -C "$rootfs" --numeric-owner -cf "$work/rootfs.tar" .
docker import "$work/rootfs.tar" "$base_tag" >/dev/null

cat >"$work/Dockerfile" <<EOF
FROM $base_tag
ENV PATH=/usr/local/bin:/bin HOME=/home/node
LABEL $version_label="$image_version"
USER 1000:1000
WORKDIR /home/node
ENTRYPOINT ["/usr/local/bin/gateway"]
EOF

say "building $tag"
# The classic builder resolves FROM from local images and never contacts a registry.
DOCKER_BUILDKIT=0 docker build --quiet --pull=false -t "$tag" "$work" >/dev/null 2>"$work/build.log" || {
    cat "$work/build.log" >&2
    die "docker build of $tag failed"
}
say "built $tag ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"

# Drop the images this build replaced when nothing names them any more and no container
# uses them.
for old in "$previous_id" "$previous_base_id"; do
    [ -n "$old" ] || continue
    tags="$(docker image inspect --format '{{len .RepoTags}}' "$old" 2>/dev/null || echo gone)"
    [ "$tags" = 0 ] || continue
    docker image rm "$old" >/dev/null 2>&1 && say "removed replaced image ${old#sha256:}" || true
done
