#!/usr/bin/env bash
# Build a local stand-in for the official `python:3.11-slim` image and import it into podman as
# `localhost/python:3.11-slim`, for machines where no container registry serves base images.
#
# Debian bookworm (the release python:3.11-slim is built on) is bootstrapped from the apt mirror
# this machine already uses; its python3 is 3.11. A virtual environment rooted at /usr/local makes
# `python`, `python3`, `python3.11`, `pip` and `pip3` live in /usr/local/bin and install into
# /usr/local/lib/python3.11/site-packages, as in the official image. Differences from the official
# image: Python is Debian's build (/usr/bin/python3.11, 3.11.2) behind that venv rather than one
# compiled into /usr/local; pip and setuptools are Debian's bundled ensurepip wheels (pip 23.0.1,
# setuptools 66.1.1) rather than the official image's; no `wheel` package.
#
# Usage: scripts/docker/make_base_image.sh            (no-op when the image already exists)
#        REBUILD_BASE=1 scripts/docker/make_base_image.sh
# Env:   BASE_TAG (default localhost/python:3.11-slim), WORK_DIR (default /var/tmp/tada-docker),
#        DEBIAN_MIRROR (default: the first Debian URI in this machine's apt sources)
set -euo pipefail

BASE_TAG=${BASE_TAG:-localhost/python:3.11-slim}
WORK_DIR=${WORK_DIR:-/var/tmp/tada-docker}
ROOTFS="$WORK_DIR/base-rootfs"

if podman image exists "$BASE_TAG" && [ -z "${REBUILD_BASE:-}" ]; then
    echo "base image $BASE_TAG already present (REBUILD_BASE=1 to rebuild)"
    exit 0
fi

detect_mirror() {
    # deb822 .sources files first, then one-line sources.list entries; skip the security suite.
    local uri
    uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{for (i = 2; i <= NF; i++) print $i}' | grep -v -- '-security' | grep '/debian' | head -n1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{print $2}' | grep -v -- '-security' | grep '/debian' | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR=${DEBIAN_MIRROR:-$(detect_mirror)}

for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y podman debootstrap" >&2; exit 1; }
done

echo "bootstrapping bookworm (minbase) from $MIRROR into $ROOTFS"
rm -rf "$ROOTFS"
mkdir -p "$WORK_DIR"
debootstrap --variant=minbase \
    --include=python3,python3-venv,ca-certificates,netbase,tzdata \
    bookworm "$ROOTFS" "$MIRROR"

# python/pip in /usr/local/bin like the official image (see the header for the differences).
chroot "$ROOTFS" /usr/bin/python3 -m venv /usr/local
chroot "$ROOTFS" /usr/local/bin/python -c 'import sys, ssl; assert sys.version_info[:2] == (3, 11), sys.version'

# Slim it down the way the official image does.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/var/log/*.log
find "$ROOTFS/usr/local" -name __pycache__ -type d -prune -exec rm -rf {} +

echo "importing as $BASE_TAG"
tar --numeric-owner -C "$ROOTFS" -c . | podman import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PYTHON_VERSION=3.11' \
    --change 'CMD ["python3"]' \
    - "$BASE_TAG"
rm -rf "$ROOTFS"
podman images "$BASE_TAG"
