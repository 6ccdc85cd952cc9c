-- wrk: POST /v1/check over 100000 keys, chosen at random per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = tonumber(os.getenv("BENCH_KEYS") or "100000")
math.randomseed(os.time())
request = function()
  local body = string.format('{"policy":"bench","key":"user:%d"}',
                             math.random(n))
  return wrk.format(nil, nil, nil, body)
end
