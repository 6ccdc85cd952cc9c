#!/usr/bin/env bash
# `make run`: starts ratelimitd with config/ratelimiter.yaml (the embedded
# memory store) on 127.0.0.1:8080, after printing how to try it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
"$BUILD/daemon/ratelimitd" --check-config config/ratelimiter.yaml >/dev/null
cat <<'TXT'
ratelimitd: config/ratelimiter.yaml, memory store, http://127.0.0.1:8080
Try it from another terminal:

  # decide: 200 or 429, JSON, RateLimit-Policy / RateLimit headers
  curl -i -X POST localhost:8080/v1/check -d '{"policy":"api","key":"user:1"}'
  # spend 4 units at once
  curl -i -X POST localhost:8080/v1/check -d '{"policy":"api","key":"user:1","cost":4}'
  # GET form; the key is built from the policy's key spec (here X-API-Key)
  curl -i -H 'X-API-Key: k1' 'localhost:8080/v1/check?policy=api'
  # nginx auth_request form: 200 or 403
  curl -i -H 'X-API-Key: k1' 'localhost:8080/v1/auth?policy=api'
  # a burst: the 11th request within a second gets 429 + Retry-After
  for i in $(seq 12); do curl -s -o /dev/null -w '%{http_code} ' \
    -X POST localhost:8080/v1/check -d '{"policy":"api","key":"burst"}'; done; echo
  curl localhost:8080/health; curl localhost:8080/ready
  curl -s localhost:8080/metrics | grep ratelimitd_decisions_total

Edit config/ratelimiter.yaml and save: it reloads (or: kill -HUP <pid>).
Ctrl-C drains and stops it.

TXT
exec "$BUILD/daemon/ratelimitd" --config config/ratelimiter.yaml --listen 127.0.0.1:8080
