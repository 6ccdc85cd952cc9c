#!/usr/bin/env bash
# Builds and installs ratelimitd for the container image into a staging
# root: the builder stage of deploy/docker/Dockerfile runs exactly this, and
# so does scripts/check_dockerfile.sh in `make test`, so the image is built
# the way CI builds (same CMake project, same compiler flags, -Werror).
#
# Usage: scripts/image_build.sh STAGE_DIR [BUILD_DIR]
#   STAGE_DIR receives usr/local/bin/ratelimitd (and the library + header).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:?usage: scripts/image_build.sh STAGE_DIR [BUILD_DIR]}
BUILD=${2:-build-image}
JOBS=${IMAGE_BUILD_JOBS:-$(nproc)}
[ "$JOBS" -gt 2 ] && JOBS=2 # the CI machine has 2 cores shared by everything

log=$(mktemp)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRL_BUILD_BENCH=OFF \
  -DCMAKE_INSTALL_PREFIX=/usr/local >"$log" 2>&1 || {
  cat "$log"
  exit 1
}
rm -f "$log"
cmake --build "$BUILD" -j "$JOBS" --target ratelimitd ratelimiter \
  ratelimiter_static >"$BUILD/image-build.log" 2>&1 || {
  grep -E 'error|warning' "$BUILD/image-build.log" | head -40
  exit 1
}
DESTDIR=$(realpath -m "$STAGE") cmake --install "$BUILD" >/dev/null
bin=$STAGE/usr/local/bin/ratelimitd
strip --strip-debug "$bin"
# The image's default configuration must load with the binary just built.
"$bin" --check-config deploy/docker/ratelimiter.yaml >/dev/null
echo "image_build: $bin ($(stat -c %s "$bin") bytes)"
