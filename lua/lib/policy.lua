-- lib/policy.lua - one decision over all windows of a policy
-- (docs/Algorithms.md, "Multi-window"; mirrors rl__policy_decide in
-- src/algorithm.c), read from and written to one Redis string.
--
-- alg is one of the lib/alg_*.lua tables: size(p), load(blob, pos, p),
-- dump(st, p), evaluate(st, p, now, cost) -> {allowed, remaining, reset,
-- retry (-1 = never)}, commit(st, p, now, cost), expiry(st, p).
local policy = {}

-- now_ms from the server's clock: the one clock of a distributed policy.
function policy.now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function load_all(alg, windows, blob)
  local states, pos = {}, 1
  for i, p in ipairs(windows) do
    states[i] = alg.load(blob, pos, p)
    pos = pos + alg.size(p)
  end
  return states
end

local function expiry_all(alg, windows, states)
  local e = 0
  for i, p in ipairs(windows) do
    e = math.max(e, alg.expiry(states[i], p))
  end
  return e
end

-- The states stored at key: all windows back to back. A missing key, a
-- blob of another size (the policy's shape changed) or a state that has
-- expired by now are all the all-zero state.
function policy.read(key, alg, windows, now)
  local size = 0
  for _, p in ipairs(windows) do
    size = size + alg.size(p)
  end
  local zero = string.rep('\0', size)
  local blob = redis.call('GET', key)
  local states
  if blob and (#blob == size or (alg.tail_load and #blob > size)) then
    states = load_all(alg, windows, blob)
    if alg.tail_load and not alg.tail_load(blob, size + 1, states) then
      states = nil
    end
  end
  if not states or now >= expiry_all(alg, windows, states) then
    states = load_all(alg, windows, zero)
    if alg.tail_load then
      alg.tail_load(zero, size + 1, states)
    end
  end
  return states
end

-- The string of states (and what the algorithm keeps after them) and its
-- TTL in ms from now.
local function encode(alg, windows, states, now)
  local parts = {}
  for i, p in ipairs(windows) do
    parts[i] = alg.dump(states[i], p)
  end
  if alg.tail_dump then
    parts[#parts + 1] = alg.tail_dump(states, windows, now)
  end
  local ttl = math.max(1, expiry_all(alg, windows, states) - now + 1)
  return table.concat(parts), string.format('%.0f', ttl)
end

-- Stores states at key with the TTL of their expiry (lease.lua and
-- lease_return.lua write through this too).
function policy.write(key, alg, windows, states, now)
  local blob, ttl = encode(alg, windows, states, now)
  redis.call('SET', key, blob, 'PX', ttl)
end

-- The binding window: denied, the denying one with the largest retry
-- (never = largest; ties: lowest index); allowed, the one with the fewest
-- units left (ties: lowest).
function policy.binding(v, allowed)
  local best = nil
  for i = 1, #v do
    if allowed then
      if best == nil or v[i].remaining < v[best].remaining then
        best = i
      end
    elseif not v[i].allowed then
      local r = v[i].retry == -1 and math.huge or v[i].retry
      local rb = best and (v[best].retry == -1 and math.huge or v[best].retry)
      if best == nil or r > rb then
        best = i
      end
    end
  end
  return best
end

-- Decides cost units at key under windows of algorithm alg; writes the new
-- state only when admitted. Returns the script's reply.
function policy.run(key, alg, cost, windows)
  local now = policy.now()
  local states = policy.read(key, alg, windows, now)
  local v, allowed = {}, true
  for i, p in ipairs(windows) do
    v[i] = alg.evaluate(states[i], p, now, cost)
    allowed = allowed and v[i].allowed
  end
  if allowed then
    for i, p in ipairs(windows) do
      alg.commit(states[i], p, now, cost)
    end
    policy.write(key, alg, windows, states, now)
  end
  local b = policy.binding(v, allowed)
  return {allowed and 1 or 0, b - 1, windows[b].limit, v[b].remaining,
    v[b].reset, v[b].retry, now}
end

-- Spends units admitted elsewhere (reconcile.lua): commits them in every
-- window without evaluating, capped at the window's limit (burst for the
-- token bucket); a fixed window that started after now - age never saw
-- them and gets nothing. Returns {units committed in window 1, now}.
function policy.reconcile(key, alg, units, age, windows)
  local now = policy.now()
  local states = policy.read(key, alg, windows, now)
  local first = 0
  for i, p in ipairs(windows) do
    local n = math.min(units, alg == gcra and p.burst or p.limit)
    if alg == fixed_window and now - num.mod(now, p.window) > now - age then
      n = 0
    end
    if n > 0 then
      alg.commit(states[i], p, now, n)
    end
    if i == 1 then
      first = n
    end
  end
  policy.write(key, alg, windows, states, now)
  return {first, now}
end
