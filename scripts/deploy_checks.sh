#!/usr/bin/env bash
# The deployment stage of `make test` (issue 9), run once, after the gcc
# build: the Dockerfile's build steps replayed (scripts/check_dockerfile.sh),
# the Kubernetes manifests and Helm chart rendered and validated with the
# image's own binary (scripts/check_k8s.sh), and a 60-second soak of that
# binary asserting RSS stays flat (scripts/soak.sh).
#
# Usage: scripts/deploy_checks.sh LOADGEN   (e.g. build-test/load/loadgen)
set -euo pipefail
cd "$(dirname "$0")/.."
LOADGEN=${1:?usage: scripts/deploy_checks.sh PATH/TO/loadgen}
ROOT=build-deploy/image-root
rm -rf "$ROOT"
mkdir -p build-deploy
scripts/check_dockerfile.sh "$ROOT"
scripts/check_k8s.sh "$ROOT/usr/local/bin/ratelimitd"
# 60 s at 3000/s over 10,000 keys (all of them seen within the 20 s
# warm-up, so every later byte of growth is a leak, not a new key): RSS
# sampled every 5 s may grow by 2 MiB at most.
SOAK_RATE=${SOAK_RATE:-3000} SOAK_INTERVAL=5 SOAK_WARMUP=20 SOAK_KEYS=10000 \
  SOAK_MAX_GROWTH_KB=${SOAK_MAX_GROWTH_KB:-2048} \
  scripts/soak.sh 60 "$ROOT/usr/local/bin/ratelimitd" "$LOADGEN"
