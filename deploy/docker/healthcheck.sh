#!/bin/bash
# Container HEALTHCHECK: GET /health on the local ratelimitd with bash's
# /dev/tcp (the runtime image carries no HTTP client). Exit 0 on 200.
# RLD_HEALTH_PORT overrides the port (default 8080, as in the image config).
port=${RLD_HEALTH_PORT:-8080}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 2 status <&3 || exit 1
case "$status" in
"HTTP/1.1 200"* | "HTTP/1.0 200"*) exit 0 ;;
*) exit 1 ;;
esac
