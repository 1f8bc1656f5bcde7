#!/usr/bin/env bash
# Verify the Dockerfile for real on a machine without a Docker engine (not part of CI: it is slow).
#
#   1. a local stand-in for python:3.11-slim (scripts/docker/make_base_image.sh; once),
#   2. `podman build` of ./Dockerfile (chroot isolation, host network, docker format so the
#      HEALTHCHECK is kept), the base image resolved locally (--pull=never),
#   3. the image's filesystem via `podman create` + `podman export` (podman cannot start
#      containers in this sandbox: crun's setrlimit is refused),
#   4. the image's CMD run under chroot as the image's USER (uid 1000) with the image's ENV and
#      WORKDIR, /proc, /dev and /sys mounted; then: HTTP 200 on 127.0.0.1:7860, the server bound to
#      0.0.0.0, the image's HEALTHCHECK command exits 0, gradio_client sees the app's API.
#
# Usage: scripts/verify_docker.sh [--smoke-only] [--no-build] [--keep-rootfs]
#   --smoke-only   stop after `tada --help` and `python -c "import tada_core, torch"` in the image
#   --no-build     reuse the image built before ($IMAGE)
#   --keep-rootfs  leave the exported filesystem in $WORK_DIR/image-rootfs (several GB)
# Env: IMAGE (localhost/tada-studio:verify), WORK_DIR (/var/tmp/tada-docker), WAIT_S (600),
#      VERIFY_TORCH_INDEX_URL (default empty = pip's default index, see below),
#      BUILD_ARGS (extra `podman build` arguments, e.g. "--build-arg PREFETCH_IMAGENET=1").
#
# pip inside the build: the Dockerfile's default torch index (PyTorch's CPU wheels) is not reachable
# from this machine, so the verification installs the pinned torch/torchvision from pip's default
# index (the CUDA build: a much larger image). This machine's pip setup (/etc/pip.conf: CA bundle,
# local wheel indexes under /opt, constraints) is bind-mounted into the build's RUN steps only; it
# is not copied into the image, and the Dockerfile stays generic.
# Idempotent: it rebuilds on top of podman's layer cache, re-exports the filesystem each run and
# unmounts/cleans up on exit (trap).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
IMAGE=${IMAGE:-localhost/tada-studio:verify}
WORK_DIR=${WORK_DIR:-/var/tmp/tada-docker}
ROOTFS="$WORK_DIR/image-rootfs"
APP_LOG="$WORK_DIR/app.log"
PORT=7860
WAIT_S=${WAIT_S:-600}
VERIFY_TORCH_INDEX_URL=${VERIFY_TORCH_INDEX_URL-}

SMOKE_ONLY=0 NO_BUILD=0 KEEP_ROOTFS=0
for arg in "$@"; do
    case "$arg" in
        --smoke-only) SMOKE_ONLY=1 ;;
        --no-build) NO_BUILD=1 ;;
        --keep-rootfs) KEEP_ROOTFS=1 ;;
        -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { printf '\n==> [%s +%ss] %s\n' "$(date +%H:%M:%S)" "$SECONDS" "$*"; }

[ "$(id -u)" = 0 ] || { echo "run as root (podman storage, chroot, mounts)" >&2; exit 1; }
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing podman and debootstrap"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman debootstrap
fi

APP_PID="" CTR=""
cleanup() {
    local rc=$?
    set +e
    if [ -n "$APP_PID" ] && kill -0 "$APP_PID" 2>/dev/null; then
        kill "$APP_PID"
        for _ in $(seq 20); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$APP_PID" 2>/dev/null
        wait "$APP_PID" 2>/dev/null
    fi
    for m in sys dev proc; do
        mountpoint -q "$ROOTFS/$m" 2>/dev/null && umount -R -l "$ROOTFS/$m"
    done
    [ -n "$CTR" ] && podman rm -f "$CTR" >/dev/null 2>&1
    if [ "$KEEP_ROOTFS" = 0 ] && [ -d "$ROOTFS" ]; then remove_rootfs; fi
    exit "$rc"
}
remove_rootfs() {
    # Never delete through a mount (that would reach the host's /dev or /proc).
    if findmnt -rn -o TARGET | grep -q "^$ROOTFS"; then
        echo "refusing to delete $ROOTFS: still mounted" >&2
        return 1
    fi
    rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK_DIR"
# A leftover from an interrupted run: unmount, then delete.
for m in sys dev proc; do mountpoint -q "$ROOTFS/$m" 2>/dev/null && umount -R -l "$ROOTFS/$m"; done
[ -d "$ROOTFS" ] && remove_rootfs

# --- 1. base image -------------------------------------------------------------------------------
log "base image (python:3.11-slim stand-in)"
scripts/docker/make_base_image.sh

# --- 2. build ------------------------------------------------------------------------------------
if [ "$NO_BUILD" = 0 ]; then
    pip_mounts=()
    for p in /etc/pip.conf /etc/xdg/pip /opt/pypi /opt/pypi-more /opt/wheels /etc/ssl/certs/ca-certificates.crt; do
        [ -e "$p" ] && pip_mounts+=(-v "$p:$p:ro")
    done
    log "podman build -t $IMAGE (TORCH_INDEX_URL='$VERIFY_TORCH_INDEX_URL')"
    build_start=$SECONDS
    # shellcheck disable=SC2086
    podman build --pull=never --isolation chroot --network host --format docker --layers \
        --build-arg "TORCH_INDEX_URL=$VERIFY_TORCH_INDEX_URL" \
        "${pip_mounts[@]}" ${BUILD_ARGS:-} \
        -t "$IMAGE" -f Dockerfile "$REPO"
    echo "build took $((SECONDS - build_start)) s"
fi
podman images "$IMAGE"
podman image inspect "$IMAGE" --format '{{.Size}}' | python3 -c 'n = int(input()); print(f"image size: {n / 1e9:.2f} GB ({n} bytes)")'

# --- 3. the image's filesystem and config ---------------------------------------------------------
log "exporting the image's filesystem to $ROOTFS"
CTR=$(podman create "$IMAGE" /bin/true)
mkdir -p "$ROOTFS"
podman export "$CTR" | tar -C "$ROOTFS" --numeric-owner -xf -
podman rm -f "$CTR" >/dev/null 2>&1 && CTR=""  # (quiet: it complains that there is no systemd for healthcheck timers)
# What a container engine provides at run time: hosts (gradio resolves "localhost"), resolv.conf.
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOTFS/etc/hosts"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true

CONFIG_JSON=$(podman image inspect "$IMAGE" --format '{{json .Config}}')
HEALTH_JSON=$(podman image inspect "$IMAGE" --format '{{json .HealthCheck}}')
# ENV as NUL-separated NAME=VALUE, CMD and HEALTHCHECK argv as NUL-separated words.
mapfile -d '' IMG_ENV < <(python3 -c 'import json,sys; [print(e, end="\0") for e in json.loads(sys.argv[1])["Env"]]' "$CONFIG_JSON")
mapfile -d '' IMG_CMD < <(python3 -c 'import json,sys; c=json.loads(sys.argv[1]); [print(w, end="\0") for w in (c.get("Entrypoint") or []) + (c.get("Cmd") or [])]' "$CONFIG_JSON")
mapfile -d '' HC_CMD < <(python3 -c '
import json, sys
hc = json.loads(sys.argv[1]) or {}
test = hc.get("Test") or []
assert test and test[0] in ("CMD", "CMD-SHELL"), f"image has no HEALTHCHECK: {hc}"
words = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
[print(w, end="\0") for w in words]' "$HEALTH_JSON")
IMG_WORKDIR=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("WorkingDir") or "/")' "$CONFIG_JSON")
IMG_USER=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("User") or "root")' "$CONFIG_JSON")
USER_UID=$(awk -F: -v u="$IMG_USER" '$1 == u || $3 == u {print $3; exit}' "$ROOTFS/etc/passwd")
USER_GID=$(awk -F: -v u="$IMG_USER" '$1 == u || $3 == u {print $4; exit}' "$ROOTFS/etc/passwd")
echo "USER=$IMG_USER ($USER_UID:$USER_GID)  WORKDIR=$IMG_WORKDIR"
echo "CMD=${IMG_CMD[*]}"
echo "HEALTHCHECK=${HC_CMD[*]}"
printf 'ENV %s\n' "${IMG_ENV[@]}"
[ "$USER_UID" = 1000 ] || { echo "expected the image to run as uid 1000, got '$USER_UID'" >&2; exit 1; }

mount -t proc proc "$ROOTFS/proc"
mount --rbind /dev "$ROOTFS/dev" && mount --make-rslave "$ROOTFS/dev"
mount --rbind /sys "$ROOTFS/sys" && mount --make-rslave "$ROOTFS/sys"

# Run argv inside the image as its user, with exactly the image's environment and workdir.
# (chroot, env and sh each exec the next, so a backgrounded run keeps one PID: the app's.)
# shellcheck disable=SC2016  # $0/$@ are for the inner sh
IN_IMAGE=(chroot --userspec="$USER_UID:$USER_GID" "$ROOTFS" /usr/bin/env -i "${IMG_ENV[@]}"
    /bin/sh -c 'cd "$0" && exec "$@"' "$IMG_WORKDIR")
in_image() { "${IN_IMAGE[@]}" "$@"; }

# --- 4a. smoke checks ------------------------------------------------------------------------------
log "smoke checks in the image"
in_image python -c "import tada_core, torch, torchvision, gradio; print('tada_core', tada_core.__file__); print('torch', torch.__version__, 'cuda build:', torch.version.cuda); print('torchvision', torchvision.__version__, 'gradio', gradio.__version__)"
in_image tada --help > "$WORK_DIR/tada-help.txt"
head -n 20 "$WORK_DIR/tada-help.txt"
# shellcheck disable=SC2016  # expanded inside the image
in_image sh -c 'id; echo "HOME=$HOME"; ls -ld "$HOME" "$HOME/.cache" "$TORCH_HOME" "$GRADIO_TEMP_DIR" "$MPLCONFIGDIR"; touch "$GRADIO_TEMP_DIR/.w" "$PWD/.w" && rm "$GRADIO_TEMP_DIR/.w" "$PWD/.w" && echo "cache dir and workdir writable"; ls checkpoints 2>/dev/null || echo "(no checkpoints/ in the image)"'
if [ "$SMOKE_ONLY" = 1 ]; then
    log "smoke checks passed (--smoke-only: not serving the app)"
    exit 0
fi

# --- 4b. serve the app and probe it ----------------------------------------------------------------
if python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"; then
    echo "port $PORT is already in use on this machine; stop that server first" >&2
    exit 1
fi
log "starting the image's CMD under chroot: ${IMG_CMD[*]}"
"${IN_IMAGE[@]}" "${IMG_CMD[@]}" > "$APP_LOG" 2>&1 &
APP_PID=$!
serve_start=$SECONDS
status=""
while [ $((SECONDS - serve_start)) -lt "$WAIT_S" ]; do
    if ! kill -0 "$APP_PID" 2>/dev/null; then
        echo "the app exited before answering; its log:" >&2
        tail -n 60 "$APP_LOG" >&2
        exit 1
    fi
    status=$(python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$PORT/', timeout=5).status)" 2>/dev/null || true)
    [ "$status" = 200 ] && break
    sleep 2
done
if [ "$status" != 200 ]; then
    echo "no HTTP 200 on 127.0.0.1:$PORT after ${WAIT_S}s; the app's log:" >&2
    tail -n 60 "$APP_LOG" >&2
    exit 1
fi
echo "app answered after $((SECONDS - serve_start)) s"

log "HTTP GET http://127.0.0.1:$PORT/"
python3 - "$PORT" <<'EOF'
import re, sys, urllib.request
port = sys.argv[1]
with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
    body = r.read().decode("utf-8", "replace")
    print("status:", r.status, r.reason, "| content-type:", r.headers.get("content-type"), "| bytes:", len(body))
print("page mentions 'TADA Studio':", "TADA Studio" in body)
print("snippet:", re.sub(r"\s+", " ", body[:300]))
try:
    import json
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10) as r:
        cfg = json.load(r)
    comps = cfg.get("components", [])
    tabs = [c.get("props", {}).get("label") for c in comps if c.get("type") in ("tabitem", "tab")]
    print("/config:", r.status, "| title:", cfg.get("title"), "| gradio", cfg.get("version"),
          "| components:", len(comps), "| tabs:", tabs)
except Exception as err:  # informational only
    print("/config not read:", type(err).__name__, err)
EOF

log "listening sockets on :$PORT (expect 0.0.0.0, reachable through docker -p)"
ss -ltnp "sport = :$PORT" | tee "$WORK_DIR/ss.txt"
grep -qE '(0\.0\.0\.0|\*|\[::\]):'"$PORT" "$WORK_DIR/ss.txt" || { echo "the app does not listen on all interfaces" >&2; exit 1; }

log "the image's HEALTHCHECK command"
in_image "${HC_CMD[@]}" && echo "HEALTHCHECK exit code: 0"

log "gradio_client against the running app, from inside the image (scripts/docker/probe_app.py)"
cp scripts/docker/probe_app.py "$ROOTFS/tmp/probe_app.py" && chmod 644 "$ROOTFS/tmp/probe_app.py"
in_image python /tmp/probe_app.py "http://127.0.0.1:$PORT/" "$IMG_WORKDIR"

log "app log (tail)"
tail -n 15 "$APP_LOG"
log "verification passed"
