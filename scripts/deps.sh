#!/usr/bin/env bash
# Installs every Debian package the project needs to build, lint, test and
# benchmark. Idempotent: packages already present are not touched, and apt is
# only consulted when something is missing. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
  # toolchain and build
  build-essential cmake pkg-config clang clang-14 libclang-rt-14-dev
  # lint and coverage
  clang-tidy clang-format cppcheck gcovr valgrind
  # tests
  libcmocka-dev
  # Redis store (issue 3 onwards) and its tests
  redis-server redis-tools libhiredis-dev libevent-dev libssl-dev openssl
  # ratelimitd (issue 7): YAML config, HTTP server, middleware, tests, bench
  libyaml-dev libmicrohttpd-dev libcurl4-openssl-dev nginx wrk
  faketime
  # observability (issue 8): promtool checks a real /metrics scrape
  # (prometheus is ~19 MB to download, ~10 s to install; no service runs)
  prometheus
  # deployment checks (issue 9): manifests lint, performance plots
  yamllint gnuplot-nox
  # tools the scripts use
  python3 procps iproute2 curl
  # chaos tests (issue 6): network partition through nftables drop rules
  nftables
)

# ---- the container image (deploy/docker/Dockerfile, issue 9) ----
# `deps.sh build`: only what the image's builder stage needs to configure
# and compile (scripts/image_build.sh); `deps.sh runtime`: the shared
# libraries ratelimitd loads (scripts/check_dockerfile.sh checks this list
# against `ldd ratelimitd`). No argument: everything above.
case "${1:-all}" in
  build)
    PACKAGES=(build-essential cmake pkg-config libcmocka-dev libhiredis-dev
      libevent-dev libssl-dev libyaml-dev libmicrohttpd-dev
      libcurl4-openssl-dev) ;;
  runtime) # libcurl4: the OTLP trace exporter (daemon/trace_export.c)
    PACKAGES=(libhiredis0.14 libssl3 libyaml-0-2 libevent-2.1-7
      libevent-core-2.1-7 libevent-pthreads-2.1-7 libcurl4 ca-certificates) ;;
  all) ;;
  *) echo "usage: deps.sh [build|runtime]" >&2; exit 2 ;;
esac

# npm for the manifest checks (scripts/check_k8s.sh): Debian's, unless a
# Node.js with its own npm is already installed (issue 9).
if [ "${1:-all}" = all ] && ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(npm)
fi

# DEPS_PRINT=1: list the selected packages and install nothing.
if [ -n "${DEPS_PRINT:-}" ]; then printf '%s\n' "${PACKAGES[@]}"; exit 0; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
