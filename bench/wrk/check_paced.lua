-- wrk: POST /v1/check (one key) at a fixed pace: each connection waits
-- PACE_MS between requests, so the offered rate is connections * 1000 /
-- PACE_MS per second (wrk has no rate option; scripts/bench_daemon.sh picks
-- the connection count for the rate it wants).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"policy":"bench","key":"user:12345","cost":1}'
local pace = tonumber(os.getenv("PACE_MS") or "2")
delay = function()
  return pace
end
