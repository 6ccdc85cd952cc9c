-- wrk: POST /v1/check with a key distribution chosen by environment:
--   LOAD_DIST=random  uniform over LOAD_KEYS keys (default 100000)
--   LOAD_DIST=hot     LOAD_HOT_SHARE (default 0.9) of requests on one key
--   LOAD_DIST=enum    every request a new key (an enumeration attack)
-- LOAD_POLICY names the policy (default "bench").
--   LOAD_DIST=hot wrk -t2 -c64 -d30s -s load/wrk/keys.lua http://127.0.0.1:8080/v1/check
-- wrk is closed-loop (a slow answer delays the next request on its
-- connection), so its latencies understate a stall; load/loadgen is the
-- open-loop generator used for docs/Performance.md.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local dist = os.getenv("LOAD_DIST") or "random"
local keys = tonumber(os.getenv("LOAD_KEYS") or "100000")
local hot_share = tonumber(os.getenv("LOAD_HOT_SHARE") or "0.9")
local policy = os.getenv("LOAD_POLICY") or "bench"
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  math.randomseed(os.time() + thread_id)
end

local function key()
  if dist == "hot" then
    if math.random() < hot_share then
      return "hot"
    end
    return "k" .. math.random(keys)
  elseif dist == "enum" then
    counter = counter + 1
    return "enum:" .. thread_id .. ":" .. counter
  end
  return "k" .. math.random(keys)
end

request = function()
  local body = string.format('{"policy":"%s","key":"%s"}', policy, key())
  return wrk.format(nil, nil, nil, body)
end

done = function(summary, latency, requests)
  io.write(string.format(
    '{"dist":"%s","requests":%d,"rps":%.0f,"errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    dist, summary.requests, summary.requests / (summary.duration / 1e6),
    summary.errors.connect + summary.errors.read + summary.errors.write +
      summary.errors.timeout, summary.errors.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max))
end
