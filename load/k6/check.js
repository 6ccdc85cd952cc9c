// k6 load test of ratelimitd's POST /v1/check, for users who have k6
// (it is not packaged for Debian; our own runs use load/loadgen, see
// docs/Performance.md). Open-loop: a constant arrival rate.
//
//   k6 run -e TARGET=http://127.0.0.1:8080 -e RATE=20000 -e DIST=hot load/k6/check.js
//
// Env: TARGET, RATE (requests/s, default 1000), DURATION (default 60s),
// DIST random|hot|enum, KEYS (default 100000), HOT_SHARE (default 0.9),
// POLICY (default "bench"), VUS (pre-allocated VUs, default 200).
// Thresholds: the seed's p99 < 5 ms; no transport errors; only 200/429.
import http from "k6/http";
import { check } from "k6";
import exec from "k6/execution";

const TARGET = __ENV.TARGET || "http://127.0.0.1:8080";
const DIST = __ENV.DIST || "random";
const KEYS = parseInt(__ENV.KEYS || "100000", 10);
const HOT_SHARE = parseFloat(__ENV.HOT_SHARE || "0.9");
const POLICY = __ENV.POLICY || "bench";

export const options = {
  scenarios: {
    check: {
      executor: "constant-arrival-rate",
      rate: parseInt(__ENV.RATE || "1000", 10),
      timeUnit: "1s",
      duration: __ENV.DURATION || "60s",
      preAllocatedVUs: parseInt(__ENV.VUS || "200", 10),
      maxVUs: parseInt(__ENV.VUS || "200", 10) * 5,
    },
  },
  thresholds: {
    http_req_duration: ["p(99)<5", "p(99.9)<20"],
    http_req_failed: ["rate<0.001"],
    checks: ["rate>0.999"],
  },
  summaryTrendStats: ["avg", "p(50)", "p(90)", "p(99)", "p(99.9)", "max"],
  discardResponseBodies: true,
};

function key() {
  if (DIST === "hot") {
    return Math.random() < HOT_SHARE ? "hot" : `k${Math.floor(Math.random() * KEYS)}`;
  }
  if (DIST === "enum") {
    return `enum:${exec.vu.idInTest}:${exec.scenario.iterationInTest}`;
  }
  return `k${Math.floor(Math.random() * KEYS)}`;
}

// 429 is a decision, not a failure.
http.setResponseCallback(http.expectedStatuses(200, 429));

export default function () {
  const res = http.post(
    `${TARGET}/v1/check`,
    JSON.stringify({ policy: POLICY, key: key() }),
    { headers: { "Content-Type": "application/json" } },
  );
  check(res, { "200 or 429": (r) => r.status === 200 || r.status === 429 });
}
