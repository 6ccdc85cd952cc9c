// Validates rendered Kubernetes manifests (multi-document YAML files) offline:
//   1. every object against the Kubernetes OpenAPI schema of its
//      apiVersion/kind (npm kubernetes-models: types, enums, required
//      fields; unknown fields are not reported by these schemas);
//   2. the rules this project's deployment depends on (probes on /health
//      and /ready, non-root, read-only root fs, resources, the config
//      directory mounted without subPath, HPA on CPU + requests/s, PDB).
// Usage: node validate-manifests.mjs FILE...   Exit 1 on any finding.
// With RLD_EXTRACT_CONFIG=DIR, each ConfigMap holding ratelimiter.yaml is
// written to DIR/<file>-<name>.yaml for `ratelimitd --check-config`.
import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { parseAllDocuments } from "yaml";

const problems = [];
const seen = [];

function modelPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/")
    ? apiVersion.split("/")
    : [null, apiVersion];
  return group === null
    ? `kubernetes-models/${version}/${kind}`
    : `kubernetes-models/${group}/${version}/${kind}`;
}

async function schemaCheck(where, obj) {
  let mod;
  try {
    mod = await import(modelPath(obj.apiVersion, obj.kind));
  } catch {
    problems.push(`${where}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
    return;
  }
  try {
    new mod[obj.kind](obj).validate();
  } catch (e) {
    problems.push(`${where}: schema: ${e.message}`);
  }
}

function probePath(p) {
  return p && p.httpGet ? p.httpGet.path : undefined;
}

function ratelimitdRules(where, obj) {
  const spec = obj.spec.template.spec;
  const c = spec.containers.find((x) => x.name === "ratelimitd");
  if (!c) return;
  const need = (cond, what) => {
    if (!cond) problems.push(`${where}: ratelimitd container: ${what}`);
  };
  need(probePath(c.livenessProbe) === "/health", "livenessProbe must GET /health");
  need(probePath(c.readinessProbe) === "/ready", "readinessProbe must GET /ready");
  const psc = spec.securityContext || {};
  const csc = c.securityContext || {};
  need(psc.runAsNonRoot === true || csc.runAsNonRoot === true, "runAsNonRoot");
  need((psc.runAsUser || csc.runAsUser) > 0, "a non-zero runAsUser");
  need(csc.readOnlyRootFilesystem === true, "readOnlyRootFilesystem");
  need(csc.allowPrivilegeEscalation === false, "allowPrivilegeEscalation: false");
  need(c.resources && c.resources.limits && c.resources.limits.memory &&
       c.resources.requests && c.resources.requests.cpu, "CPU request and memory limit");
  const args = c.args || [];
  const cfg = args[args.indexOf("--config") + 1];
  need(cfg === "/etc/ratelimiter/ratelimiter.yaml", "--config /etc/ratelimiter/ratelimiter.yaml");
  const mount = (c.volumeMounts || []).find((m) => m.mountPath === "/etc/ratelimiter");
  need(mount && !mount.subPath,
       "the config directory mounted at /etc/ratelimiter without subPath (subPath mounts never update)");
  const vol = mount && (spec.volumes || []).find((v) => v.name === mount.name);
  need(vol && vol.configMap && vol.configMap.name, "the config volume must be a ConfigMap");
  if (vol && vol.configMap) seen.push({ kind: "configRef", name: vol.configMap.name });
  const port = (c.ports || []).find((p) => p.name === "http");
  need(port && port.containerPort === 8080, "containerPort 8080 named http");
}

function hpaRules(where, obj) {
  const types = (obj.spec.metrics || []).map((m) =>
    m.type === "Resource" ? `cpu:${m.resource.name}` : `${m.type}:${(m.pods || {}).metric?.name}`);
  if (!types.includes("cpu:cpu")) problems.push(`${where}: HPA without a CPU metric`);
  if (!types.some((t) => t.startsWith("Pods:") && t.includes("requests_per_second")))
    problems.push(`${where}: HPA without the requests/s Pods metric`);
}

const extractDir = process.env.RLD_EXTRACT_CONFIG;
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length) {
      problems.push(`${file}#${i}: YAML: ${doc.errors[0].message}`);
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;
    const where = `${basename(file)}: ${obj.kind}/${obj.metadata?.name}`;
    seen.push({ kind: obj.kind, name: obj.metadata?.name, file });
    await schemaCheck(where, obj);
    if (obj.kind === "Deployment") ratelimitdRules(where, obj);
    if (obj.kind === "HorizontalPodAutoscaler") hpaRules(where, obj);
    if (obj.kind === "ConfigMap" && obj.data && obj.data["ratelimiter.yaml"] && extractDir) {
      writeFileSync(`${extractDir}/${basename(file, ".yaml")}-${obj.metadata.name}.yaml`,
                    obj.data["ratelimiter.yaml"]);
    }
  }
}
for (const ref of seen.filter((s) => s.kind === "configRef")) {
  if (!seen.some((s) => s.kind === "ConfigMap" && s.name === ref.name))
    problems.push(`the Deployment mounts ConfigMap ${ref.name}, which is not rendered`);
}
const kinds = new Set(seen.map((s) => s.kind));
for (const k of ["Deployment", "Service", "ConfigMap", "PodDisruptionBudget"])
  if (seen.some((s) => s.kind === "Deployment") && !kinds.has(k))
    problems.push(`no ${k} rendered next to the Deployment`);
for (const p of problems) console.error(`validate-manifests: ${p}`);
const n = seen.filter((s) => s.kind !== "configRef").length;
console.log(`validate-manifests: ${n} objects, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
