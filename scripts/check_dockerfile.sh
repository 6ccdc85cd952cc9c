#!/usr/bin/env bash
# Keeps deploy/docker/Dockerfile honest without a Docker engine:
#   1. static rules: two Debian bookworm stages, a numeric non-root USER,
#      a HEALTHCHECK, the config under the VOLUME ratelimitd watches;
#   2. replays the builder stage in a scratch directory: WORKDIR, COPY and
#      RUN are executed as written (absolute paths mapped into the scratch
#      dir), so the image is built by the same scripts CI runs;
#   3. assembles the runtime stage's files (COPY, COPY --from=build) in a
#      scratch root, runs its exec-form RUN (--check-config), checks that
#      `deps.sh runtime` covers every library `ldd ratelimitd` names, then
#      starts the binary with the image's config and runs the HEALTHCHECK
#      command against it (200 -> 0), and again with nothing listening (1).
# The runtime stage's useradd/apt steps are not run on this machine.
#
# Usage: scripts/check_dockerfile.sh [KEEP_DIR]  (KEEP_DIR: keep the scratch
# root there, e.g. for scripts/soak.sh to reuse the binary)
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKERFILE=deploy/docker/Dockerfile
T=$(mktemp -d)
RLD_PID=""
cleanup() {
  [ -n "$RLD_PID" ] && kill "$RLD_PID" 2>/dev/null && wait "$RLD_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "check_dockerfile: $*" >&2
  exit 1
}

# Instructions, one per line (continuations joined, comments dropped).
mapfile -t INSTR < <(sed -e '/^[[:space:]]*#/d' "$DOCKERFILE" |
  sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' | sed -e '/^[[:space:]]*$/d')

# ---- 1. static rules ----------------------------------------------------
froms=$(printf '%s\n' "${INSTR[@]}" | grep -c '^FROM ')
[ "$froms" -eq 2 ] || fail "expected 2 stages (builder, runtime), found $froms"
printf '%s\n' "${INSTR[@]}" | grep '^FROM ' | grep -qv 'debian:bookworm' &&
  fail "every stage must be FROM debian:bookworm*"
user=$(printf '%s\n' "${INSTR[@]}" | grep '^USER ' | tail -1 | awk '{print $2}')
uid=${user%%:*}
[[ "$uid" =~ ^[0-9]+$ ]] && [ "$uid" -ne 0 ] ||
  fail "USER must be a numeric non-root uid (Kubernetes runAsNonRoot), got '$user'"
printf '%s\n' "${INSTR[@]}" | grep -q '^HEALTHCHECK .*CMD' || fail "no HEALTHCHECK"
volume=$(printf '%s\n' "${INSTR[@]}" | grep '^VOLUME ' | sed -E 's/.*\["([^"]+)".*/\1/')
cmd_config=$(printf '%s\n' "${INSTR[@]}" | grep '^CMD ' | sed -E 's/.*"--config", "([^"]+)".*/\1/')
[ "$(dirname "$cmd_config")" = "$volume" ] ||
  fail "the config ($cmd_config) must sit directly in the VOLUME ($volume) that is watched"
for f in deploy/k8s/base/deployment.yaml deploy/helm/ratelimiter/templates/deployment.yaml; do
  if [ ! -f "$f" ]; then continue; fi
  grep -q "mountPath: $volume\$" "$f" || fail "$f does not mount the config at $volume"
  grep -q "$cmd_config" "$f" || fail "$f does not run ratelimitd with $cmd_config"
done

# ---- 2. the builder stage, replayed -------------------------------------
map_paths() { # absolute image paths -> scratch paths
  sed -E "s#(^|[[:space:]\"])/(stage|src|tmp/deps\\.sh|var/lib/apt/lists)#\\1$T/\\2#g" <<<"$1"
}
copy_into() { # src dest (src relative to the repository; "." = the tree)
  local src=$1 dest=$2
  if [ "$src" = . ]; then
    mkdir -p "$dest"
    git ls-files -co --exclude-standard -z | grep -zv '^build' |
      xargs -0 cp --parents -t "$dest"
  else
    install -D -m "$(stat -c %a "$src")" "$src" "$dest"
  fi
}
stage=0
cwd=$T
mkdir -p "$T/src" "$T/runtime"
for line in "${INSTR[@]}"; do
  op=${line%% *}
  args=${line#* }
  case "$op" in
  FROM) stage=$((stage + 1)) ;;
  WORKDIR)
    if [ "$stage" -eq 1 ]; then cwd=$(map_paths "$args") && mkdir -p "$cwd"; fi ;;
  COPY)
    if [ "$stage" -eq 1 ]; then
      read -r -a w <<<"$args"
      [ "${#w[@]}" -eq 2 ] || fail "builder COPY takes one source: $line"
      copy_into "${w[0]}" "$cwd/${w[1]}"
    else
      read -r -a w <<<"$args"
      if [ "${w[0]}" = "--from=build" ]; then
        src=$T/${w[1]#/}
        [ -f "$src" ] || fail "COPY --from=build: ${w[1]} was not produced by the builder stage"
        install -D "$src" "$T/runtime/${w[2]#/}"
      else
        [ -e "${w[0]}" ] || fail "COPY ${w[0]}: no such file in the repository"
        install -D -m "$(stat -c %a "${w[0]}")" "${w[0]}" "$T/runtime/${w[1]#/}"
      fi
    fi
    ;;
  RUN)
    if [ "$stage" -eq 1 ]; then
      cmd=$(map_paths "$args")
      echo "check_dockerfile: builder RUN $args" >&2
      (cd "$cwd" && bash -euo pipefail -c "$cmd") >"$T/run.log" 2>&1 || {
        cat "$T/run.log" >&2
        fail "builder step failed: RUN $args"
      }
      tail -n 1 "$T/run.log" >&2
    elif [[ "$args" == \[* ]]; then
      mapfile -t argv < <(python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$args")
      argv[0]=$T/runtime${argv[0]}
      for i in "${!argv[@]}"; do
        if [[ "${argv[$i]}" == /etc/* ]]; then argv[$i]=$T/runtime${argv[$i]}; fi
      done
      "${argv[@]}" >/dev/null || fail "runtime step failed: RUN $args"
    fi
    ;;
  esac
done

# ---- 3. the runtime stage: libraries, config, healthcheck ---------------
bin=$T/runtime/usr/local/bin/ratelimitd
[ -x "$bin" ] || fail "the runtime stage has no /usr/local/bin/ratelimitd"
mapfile -t runtime_pkgs < <(DEPS_PRINT=1 scripts/deps.sh runtime)
# what apt installs for them: the listed packages and their dependencies
mapfile -t runtime_pkgs < <(apt-cache depends --recurse --no-recommends \
  --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
  "${runtime_pkgs[@]}" 2>/dev/null | grep -v '^ ' | sed 's/:.*//' | sort -u)
while read -r lib; do
  pkg=$(dpkg -S "$(realpath "$lib")" 2>/dev/null | head -1 | cut -d: -f1 || true)
  [ -n "$pkg" ] || pkg=$(dpkg -S "$lib" | head -1 | cut -d: -f1)
  if [ "$pkg" = libc6 ]; then continue; fi # in every Debian image
  printf '%s\n' "${runtime_pkgs[@]}" | grep -qx "$pkg" ||
    fail "ratelimitd links $lib from package $pkg, which 'deps.sh runtime' does not install (nor any dependency of it)"
done < <(ldd "$bin" | awk '/=>/ {print $3}')

health=$T/runtime/usr/local/bin/ratelimitd-healthcheck
[ -x "$health" ] || fail "the HEALTHCHECK script is not in the runtime stage"
"$bin" --config "$T/runtime$cmd_config" --listen 127.0.0.1:0 \
  --port-file "$T/port" --quiet &
RLD_PID=$!
for _ in $(seq 1 200); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || fail "ratelimitd did not start with the image's config"
port=$(cat "$T/port")
RLD_HEALTH_PORT=$port "$health" || fail "HEALTHCHECK failed against a running ratelimitd"
kill -TERM "$RLD_PID"
wait "$RLD_PID" || fail "ratelimitd did not exit 0 on SIGTERM (the image's STOPSIGNAL)"
RLD_PID=""
if RLD_HEALTH_PORT=$port "$health" 2>/dev/null; then
  fail "HEALTHCHECK passed with nothing listening"
fi
if [ -n "${1:-}" ]; then
  mkdir -p "$1"
  cp -a "$T/runtime/." "$1/"
fi
echo "check_dockerfile: ok (builder replayed, runtime libraries covered, healthcheck 0/1)"
