#!/usr/bin/env bash
# Makes the base image of the lab image, debian:bookworm-slim, available to the local Docker
# engine. Where a registry answers it is pulled; where none does (an offline machine, CI here) it
# is built from Debian's own packages with debootstrap and imported under the same name, so that
# docker/Dockerfile's FROM finds it and never needs a pull. Does nothing if the image is there.
#
#   docker/bootstrap-base.sh            # needs docker; debootstrap only when the pull fails
#   BASE_IMAGE=debian:bookworm-slim MIRROR=http://deb.debian.org/debian docker/bootstrap-base.sh
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

say() { printf 'bootstrap-base: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

command -v docker >/dev/null || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed): start dockerd first"

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "$BASE_IMAGE is already there; nothing to do"
  exit 0
fi

say "pulling $BASE_IMAGE"
if timeout 300 docker pull "$BASE_IMAGE" >&2; then
  say "pulled $BASE_IMAGE"
  exit 0
fi
say "cannot pull $BASE_IMAGE (no registry reachable?); building it from Debian's packages instead"

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root: run this script as root"
if ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null || die "debootstrap is not installed and there is no apt-get to install it"
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } ||
    die "cannot install debootstrap"
fi

work="$(mktemp -d /tmp/iolab-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

say "debootstrap --variant=minbase $SUITE from $MIRROR (about a minute)"
if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  die "debootstrap failed (the lines above are the end of its log)"
fi

# The apt sources of the official image: the release, its updates and its security fixes, so
# that `apt-get update && apt-get install` inside the image (the Dockerfile does) sees the same
# packages as on debian:bookworm-slim. debootstrap wrote only the release to sources.list.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# What makes the official image "slim" and keeps layers small: no documentation, man pages or
# translations installed by later packages, and apt's downloaded archives removed after installs.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
printf 'Acquire::Languages "none";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log \
  "$rootfs"/tmp/* 2>/dev/null || true
# Containers get their own hostname, resolv.conf and hosts from the engine.
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/resolv.conf"

say "importing the root filesystem as $BASE_IMAGE"
tar --numeric-owner -C "$rootfs" -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase $SUITE $MIRROR (docker/bootstrap-base.sh)" \
    - "$BASE_IMAGE" >/dev/null

docker image inspect "$BASE_IMAGE" >/dev/null || die "the import did not produce $BASE_IMAGE"
say "built $BASE_IMAGE ($(docker image inspect --format '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
