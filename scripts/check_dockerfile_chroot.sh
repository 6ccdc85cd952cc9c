#!/usr/bin/env bash
# The Dockerfile's two stages on a *fresh* Debian 12 root, without Docker:
# debootstrap (minbase, from Debian's mirror) gives a clean bookworm; the
# builder steps run in one chroot of it (so `deps.sh build` must really
# bring every package the build needs), the runtime steps in another (so
# `deps.sh runtime` must bring every library the binary loads), then the
# binary runs there as uid 10001 and the HEALTHCHECK command is run
# against it. Slow (downloads ~300 MB, several minutes): not in `make
# test`, which runs scripts/check_dockerfile.sh instead. Needs root.
#
# Usage: scripts/check_dockerfile_chroot.sh [WORK_DIR]   (default /tmp/rl-chroot)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/rl-chroot}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" -eq 0 ] || { echo "needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
mkdir -p "$W"
BASE=$W/base
BUILD=$W/build
RUN=$W/runtime
if [ ! -x "$BASE/bin/bash" ]; then
  echo "chroot: debootstrap bookworm (minbase) into $BASE" >&2
  debootstrap --variant=minbase bookworm "$BASE" "$MIRROR" >"$W/debootstrap.log" 2>&1
fi
rm -rf "$BUILD" "$RUN"
cp -a "$BASE" "$BUILD"
cp -a "$BASE" "$RUN"
RLD_PID=""
cleanup() {
  [ -n "$RLD_PID" ] && kill "$RLD_PID" 2>/dev/null && wait "$RLD_PID" 2>/dev/null
  for r in "$BUILD" "$RUN"; do
    umount "$r/proc" 2>/dev/null || true
    umount "$r/dev" 2>/dev/null || true
  done
}
trap cleanup EXIT
for r in "$BUILD" "$RUN"; do
  mount -t proc proc "$r/proc"
  mount --bind /dev "$r/dev"
  cp /etc/resolv.conf "$r/etc/resolv.conf"
done

# ---- builder stage: WORKDIR /src; COPY scripts/deps.sh; RUN deps.sh build;
#      COPY . .; RUN image_build.sh /stage build-image
mkdir -p "$BUILD/src"
git ls-files -co --exclude-standard -z | grep -zv '^build' | xargs -0 cp --parents -t "$BUILD/src"
echo "chroot: builder: scripts/deps.sh build" >&2
chroot "$BUILD" /bin/bash -c 'cd /src && scripts/deps.sh build' >"$W/build-deps.log" 2>&1
echo "chroot: builder: scripts/image_build.sh /stage build-image" >&2
chroot "$BUILD" /bin/bash -c 'cd /src && scripts/image_build.sh /stage build-image' | tee "$W/build.log"

# ---- runtime stage
cp scripts/deps.sh "$RUN/tmp/deps.sh"
echo "chroot: runtime: deps.sh runtime, user 10001" >&2
chroot "$RUN" /bin/bash -c '/tmp/deps.sh runtime && rm -rf /var/lib/apt/lists/* /tmp/deps.sh &&
  groupadd --system --gid 10001 ratelimitd &&
  useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin ratelimitd && mkdir -p /etc/ratelimiter' >"$W/runtime-deps.log" 2>&1
install -D "$BUILD/stage/usr/local/bin/ratelimitd" "$RUN/usr/local/bin/ratelimitd"
install -D -m 755 deploy/docker/healthcheck.sh "$RUN/usr/local/bin/ratelimitd-healthcheck"
install -D deploy/docker/ratelimiter.yaml "$RUN/etc/ratelimiter/ratelimiter.yaml"
chroot --userspec=10001:10001 "$RUN" /usr/local/bin/ratelimitd --check-config /etc/ratelimiter/ratelimiter.yaml
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
chroot --userspec=10001:10001 "$RUN" /usr/local/bin/ratelimitd \
  --config /etc/ratelimiter/ratelimiter.yaml --listen "127.0.0.1:$port" --quiet &
RLD_PID=$!
ok=0
for _ in $(seq 1 100); do
  if chroot --userspec=10001:10001 "$RUN" /usr/bin/env RLD_HEALTH_PORT="$port" \
    /usr/local/bin/ratelimitd-healthcheck; then
    ok=1
    break
  fi
  sleep 0.1
done
[ "$ok" -eq 1 ] || { echo "chroot: HEALTHCHECK never passed" >&2; exit 1; }
kill -TERM "$RLD_PID"
wait "$RLD_PID"
RLD_PID=""
echo "chroot: ok: fresh bookworm builds with 'deps.sh build', runs with 'deps.sh runtime' as uid 10001, healthcheck 0"
