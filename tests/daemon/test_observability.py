#!/usr/bin/env python3
"""test_observability.py - ratelimitd's metrics and traces, end to end.

  test_observability.py metrics RATELIMITD DASHBOARD_JSON
      A daemon on a real redis-server (started here, on a free port, stopped
      by PID) serves allowed, denied and bad requests and one reload; its
      /metrics scrape must pass `promtool check metrics`, carry the expected
      samples with exact values, never show a client key, and every metric
      name used by every panel expression of the Grafana dashboard must be
      one the scrape really has.

  test_observability.py tracing RATELIMITD
      A local OTLP/HTTP receiver (http.server) collects what the daemon
      exports: payload structure (resourceSpans/scopeSpans/spans), a 32-hex
      traceId equal to the incoming traceparent's, a fresh 16-hex spanId,
      parentSpanId, attributes (policy, result, source, window; never the
      key); flag-00 parents are not sampled, invalid traceparents start new
      traces, and a 0.25 ratio samples 25% of root decisions.

Exit status 0 on success; any failed check raises.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import http.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLACK = float(os.environ.get("RLT_SLACK", "1"))  # loaded machines
TMP = tempfile.mkdtemp(prefix="rlt-obs.")
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    port = free_port()
    p = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save",
         "", "--appendonly", "no", "--dir", TMP],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    deadline = time.time() + 10 * SLACK
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return port
        except OSError:
            time.sleep(0.05)
    raise AssertionError("redis-server did not start")


def start_daemon(binary, config, env=None, name="rld"):
    cfg = os.path.join(TMP, name + ".yaml")
    with open(cfg, "w") as f:
        f.write(config)
    port_file = os.path.join(TMP, name + ".port")
    log = open(os.path.join(TMP, name + ".log"), "w")
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.Popen([binary, "--config", cfg, "--listen", "127.0.0.1:0",
                          "--port-file", port_file],
                         stdout=log, stderr=log, env=full_env)
    PROCS.append(p)
    deadline = time.time() + 20 * SLACK
    while time.time() < deadline:
        if p.poll() is not None:
            raise AssertionError(f"{name} exited: {open(log.name).read()}")
        if os.path.exists(port_file):
            port = int(open(port_file).read())
            try:  # ready once it answers /health
                get(port, "/health")
                return p, port, cfg
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"{name} did not start")


def stop(p):
    """SIGTERM; the daemon must exit 0 (a sanitizer report makes it not)."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30 * SLACK)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    log = p.args[p.args.index("--port-file") + 1].replace(".port", ".log")
    assert p.returncode == 0, f"exit {p.returncode}: {open(log).read()[-3000:]}"


CONNECTIONS = {}


def request(port, method, path, body=None, headers=None):
    """One request on a kept-alive connection per port (few accepts: see
    tsan.supp), reconnecting once if the daemon closed it."""
    for attempt in range(2):
        conn = CONNECTIONS.get(port)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port,
                                              timeout=10 * SLACK)
            CONNECTIONS[port] = conn
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read().decode()
        except (http.client.HTTPException, ConnectionError):
            conn.close()
            del CONNECTIONS[port]
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def get(port, path):
    return request(port, "GET", path)


def check(port, key, policy=None, headers=None):
    body = {"key": key}
    if policy:
        body["policy"] = policy
    return request(port, "POST", "/v1/check", json.dumps(body), headers)[0]


# ---- metrics and dashboard ------------------------------------------------

def samples(text):
    """{series: value} and the set of sample names of a scrape."""
    out, names = {}, set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", series).group(0))
    return out, names


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
                "and", "or", "unless", "bool", "offset", "inf", "nan"}


def expr_metric_names(expr):
    """Metric names of a PromQL expression: identifiers that are not
    functions, keywords, label names, strings, ranges or numbers."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)           # strings
    e = re.sub(r"\{[^}]*\}", "", e)                          # matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                         # ranges
    e = re.sub(r"(?<![\w:])\d[\d.]*(?:[eE][+-]?\d+)?", " ", e)  # numbers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
               "", e)                                        # label lists
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word, rest = m.group(0), e[m.end():].lstrip()
        if word.lower() in PROMQL_WORDS or rest.startswith("("):
            continue
        names.add(word)
    return names


def check_dashboard(path, exported):
    with open(path) as f:
        dash = json.load(f)
    assert dash["panels"], "no panels"
    used = set()
    for panel in dash["panels"]:
        exprs = [t["expr"] for t in panel.get("targets", [])]
        assert exprs, f"panel {panel['title']!r} has no expression"
        for expr in exprs:
            names = expr_metric_names(expr)
            assert names, f"no metric in {expr!r}"
            missing = names - exported
            assert not missing, (f"panel {panel['title']!r}: {sorted(missing)} "
                                 f"not exported by ratelimitd")
            used |= names
    want = {"ratelimiter_requests_total", "ratelimiter_cache_hits_total",
            "ratelimiter_redis_latency_seconds_bucket",
            "ratelimiter_fallback_events_total", "ratelimiter_breaker_state"}
    assert want <= used, f"dashboard lacks {sorted(want - used)}"
    print(f"ok: dashboard: {len(dash['panels'])} panels, {len(used)} metric "
          f"names, all exported")


def test_metrics(binary, dashboard):
    redis_port = start_redis()
    config = f"""
rate_limiter:
  redis:
    addrs: [127.0.0.1:{redis_port}]
    timeout: 2s
  windows: [{{max_requests: 3, duration: 1m}}, {{max_requests: 100, duration: 1h}}]
  policies:
    - name: api
      algorithm: fixed_window
      windows: [{{max_requests: 2, duration: 30s}}]
"""
    p, port, cfg = start_daemon(binary, config)
    statuses = [check(port, "secret-user-1") for _ in range(4)]
    statuses += [check(port, "secret-user-2", "api") for _ in range(3)]
    assert statuses == [200, 200, 200, 429, 200, 200, 429], statuses
    assert check(port, "k", "nosuchpolicy") == 400
    with open(cfg, "a") as f:  # a reload that changes nothing but the text
        f.write("# reloaded\n")
    p.send_signal(signal.SIGHUP)
    deadline = time.time() + 10 * SLACK
    while time.time() < deadline:
        text = get(port, "/metrics")[1]
        if 'ratelimitd_config_reloads_total{result="ok"} 1' in text:
            break
        time.sleep(0.05)
    text = get(port, "/metrics")[1]
    with open(os.path.join(TMP, "scrape.txt"), "w") as f:
        f.write(text)
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found (scripts/deps.sh installs prometheus)"
    r = subprocess.run([promtool, "check", "metrics"], input=text,
                       capture_output=True, text=True)
    assert r.returncode == 0, f"promtool: {r.stdout}{r.stderr}"
    print("ok: promtool check metrics accepts the scrape")
    got, names = samples(text)
    want = {
        'ratelimiter_requests_total{policy="default",window="1m",result="allowed"}': 3,
        'ratelimiter_requests_total{policy="default",window="1m",result="denied"}': 1,
        'ratelimiter_requests_total{policy="api",window="30s",result="allowed"}': 2,
        'ratelimiter_requests_total{policy="api",window="30s",result="denied"}': 1,
        'ratelimiter_decision_sources_total{source="redis"}': 7,
        'ratelimiter_redis_latency_seconds_count{operation="allow"}': 7,
        f'ratelimiter_breaker_state{{node="127.0.0.1:{redis_port}"}}': 0,
        'ratelimiter_build_info{version="0.1.0",store="redis"}': 1,
        'ratelimitd_http_responses_total{code="400"}': 1,
        'ratelimitd_http_responses_total{code="429"}': 2,
        'ratelimitd_config_reloads_total{result="ok"}': 1,
        'ratelimitd_trace_spans_total{outcome="queued"}': 0,
    }
    for series, value in want.items():
        assert got.get(series) == value, f"{series}: {got.get(series)} != {value}"
    assert any(s.startswith('ratelimitd_config_info{version="2"') for s in got)
    assert "secret" not in text and "nosuchpolicy" not in text
    print(f"ok: {len(got)} samples with the expected values, no client key")
    check_dashboard(dashboard, names)
    stop(p)


# ---- tracing --------------------------------------------------------------

class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # curl keeps its connection
    bodies = []
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Receiver.lock:
            Receiver.bodies.append((self.path, self.headers["Content-Type"],
                                    body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def received_spans():
    """Every span received so far, structure checked on the way."""
    spans = []
    with Receiver.lock:
        bodies = list(Receiver.bodies)
    for path, ctype, body in bodies:
        assert path == "/v1/traces", path
        assert ctype == "application/json", ctype
        doc = json.loads(body)
        assert b"secret" not in body, "a client key reached a span"
        for rs in doc["resourceSpans"]:
            attrs = {a["key"]: a["value"]["stringValue"]
                     for a in rs["resource"]["attributes"]}
            assert attrs["service.name"] == "obs-test", attrs
            for ss in rs["scopeSpans"]:
                assert ss["scope"]["name"] == "ratelimitd"
                spans.extend(ss["spans"])
    for s in spans:
        assert re.fullmatch(r"[0-9a-f]{32}", s["traceId"]), s
        assert re.fullmatch(r"[0-9a-f]{16}", s["spanId"]), s
        assert s["traceId"] != "0" * 32 and s["spanId"] != "0" * 16
        assert s["name"] == "ratelimit.decide" and s["kind"] == 2
        assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 0
        s["attrs"] = {a["key"]: a["value"]["stringValue"]
                      for a in s["attributes"]}
    return spans


def wait_spans(n, port):
    deadline = time.time() + 20 * SLACK
    while time.time() < deadline:
        spans = received_spans()
        if len(spans) >= n:
            return spans
        time.sleep(0.05)
    raise AssertionError(f"{len(received_spans())} spans received, want {n}: "
                         f"{get(port, '/metrics')[1][-600:]}")


def metric(port, series):
    got, _ = samples(get(port, "/metrics")[1])
    return got.get(series, 0)


def test_tracing(binary):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    config = f"""
tracing:
  enabled: true
  endpoint: {endpoint}/v1/traces
  sample_ratio: 0.25
  service_name: from-config
rate_limiter:
  windows: [{{max_requests: 1000000, duration: 1m}}]
  policies:
    - name: api
      windows: [{{max_requests: 1, duration: 1h}}, {{max_requests: 5, duration: 1d}}]
"""
    env = {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "obs-test"}
    p, port, _ = start_daemon(binary, config, env, "parented")

    # Sampled parents: every decision is exported, in the parent's trace.
    parents = {}
    for i in range(20):
        trace, parent = f"{i + 1:032x}", f"{0xabc0 + i:016x}"
        parents[trace] = parent
        tp = f"00-{trace}-{parent}-01"
        want = 200 if i == 0 else 429
        assert check(port, "secret-key", "api", {"traceparent": tp}) == want
    spans = wait_spans(20, port)
    assert len(spans) == 20, len(spans)
    for s in spans:
        assert s["traceId"] in parents, s["traceId"]
        assert s["parentSpanId"] == parents[s["traceId"]], s
        assert s["spanId"] != s["parentSpanId"]
        a = s["attrs"]
        assert a["ratelimit.policy"] == "api" and a["ratelimit.source"] == "memory"
        assert a["ratelimit.result"] in ("allowed", "denied"), a
        assert a["ratelimit.window"] == "1h", a
    assert sorted(s["attrs"]["ratelimit.result"] for s in spans).count(
        "allowed") == 1
    print("ok: 20 sampled parents -> 20 spans in their traces, attributes set")

    # Unsampled parents (flag 00) are not sampled (parent-based sampler).
    for i in range(20):
        tp = f"00-{i + 100:032x}-{0xdef0 + i:016x}-00"
        check(port, "secret-key", "api", {"traceparent": tp})
    time.sleep(0.3)

    # Root decisions: 25% sampled by trace id.
    n_root = 1200
    for i in range(n_root):
        check(port, f"secret-{i}")
    queued = 20 + n_root * 0.25
    deadline = time.time() + 20 * SLACK
    while time.time() < deadline:
        if metric(port, 'ratelimitd_trace_spans_total{outcome="queued"}') == \
                metric(port, 'ratelimitd_trace_spans_total{outcome="exported"}'):
            break
        time.sleep(0.05)
    spans = received_spans()
    roots = [s for s in spans if "parentSpanId" not in s]
    assert not any(int(s["traceId"], 16) >= 100 and
                   int(s["traceId"], 16) < 120 for s in spans), \
        "a flag-00 parent was sampled"
    # Binomial(1200, 0.25): mean 300, sd 15; +-6 sd.
    assert 210 <= len(roots) <= 390, f"{len(roots)} of {n_root} root spans"
    assert metric(port, 'ratelimitd_trace_spans_total{outcome="dropped"}') == 0
    print(f"ok: ratio 0.25 sampled {len(roots)} of {n_root} root decisions "
          f"(expected ~{int(queued - 20)}); flag-00 parents not sampled")
    stop(p)

    # Invalid traceparents start new traces (always_on: every one sampled).
    Receiver.bodies.clear()
    env["OTEL_TRACES_SAMPLER"] = "always_on"
    p, port, _ = start_daemon(binary, config, env, "invalid")
    bad = [
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # upper
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # ff
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",  # long
        "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",   # short
        "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # sep
    ]
    for tp in bad:
        check(port, "secret-key", None, {"traceparent": tp})
    spans = wait_spans(len(bad), port)
    for s in spans:
        assert "parentSpanId" not in s, s
        assert s["traceId"] != "0af7651916cd43dd8448eb211c80319c", s
    assert len({s["traceId"] for s in spans}) == len(bad)
    print(f"ok: {len(bad)} invalid traceparents -> {len(bad)} new traces")
    stop(p)
    server.shutdown()


def main():
    try:
        if sys.argv[1] == "metrics":
            test_metrics(sys.argv[2], sys.argv[3])
        else:
            test_tracing(sys.argv[2])
    finally:
        for proc in PROCS:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for name in sorted(os.listdir(TMP)):
            if name.endswith(".log") and os.environ.get("RLT_SHOW_LOGS"):
                print(open(os.path.join(TMP, name)).read())
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
