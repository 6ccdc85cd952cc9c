-- wrk: POST /v1/check, one key (the memory store's hot path).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"policy":"bench","key":"user:12345","cost":1}'
