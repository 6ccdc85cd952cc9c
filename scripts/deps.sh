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
  # tools the scripts use
  python3 procps iproute2 curl
  # chaos tests (issue 6): network partition through nftables drop rules
  nftables
)

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
