-- lib/alg_sliding_counter.lua - the sliding window counter
-- (docs/Algorithms.md, "Sliding window counter"; mirrors
-- src/alg_sliding_counter.c).
--
-- State, 24 bytes little-endian: int64 start (current aligned window),
-- uint64 prev (units of the window before), uint64 cur (units of this one).
-- prev * (W - e) and the like reach 2^75: they go through lib/num.lua.
local sliding_counter = {name = 'sliding_counter'}

local FORMAT = '<i8I8I8'

function sliding_counter.size()
  return 24
end

function sliding_counter.load(blob, pos)
  local start, prev, cur = struct.unpack(FORMAT, blob, pos)
  return {start = start, prev = prev, cur = cur}
end

function sliding_counter.dump(st)
  return struct.pack(FORMAT, st.start, st.prev, st.cur)
end

-- Step 1: moves the state to now's window; a clock that went back leaves it
-- alone (the rules then use start as the time).
local function roll(st, window, now)
  if now < st.start then
    return
  end
  local d = now - st.start
  if d < window then
    return
  end
  if d < 2 * window then
    st.prev = st.cur
    st.start = st.start + window
  else
    st.prev = 0
    st.start = now - num.mod(now, window)
  end
  st.cur = 0
end

-- ceil(prev * (W - e) / W): the previous window's units still counted.
local function prev_share(prev, e, window)
  if prev == 0 or e == 0 then
    return prev
  end
  return num.div_ceil(num.mul(prev, window - e), window, prev)
end

-- Step 2: prev * (W - e) + (cur + c) * W <= L * W, exactly.
local function admits(st, p, e, cost)
  if cost > p.limit or st.cur > p.limit - cost then
    return false
  end
  return num.mul_le(st.prev, p.window - e, p.limit - cost - st.cur, p.window)
end

-- Step 4, denied with c <= L: the earliest admitting time, as an offset
-- from start.
local function retry_offset(st, p, cost)
  local w = p.window
  if st.cur <= p.limit - cost and st.prev > 0 then
    local q = num.muldiv(p.limit - cost - st.cur, w, st.prev, w)
    if q > 0 then
      return w - q
    end
  end
  local e2 = 0
  if st.cur > 0 then
    e2 = w - num.muldiv(p.limit - cost, w, st.cur, w)
  end
  return w + e2
end

-- Step 4: until the estimate is back to 0.
local function reset_after(st, cur, window, now)
  if cur > 0 then
    return num.delay(st.start, 2 * window, now)
  end
  return st.prev > 0 and num.delay(st.start, window, now) or 0
end

function sliding_counter.evaluate(st, p, now, cost)
  roll(st, p.window, now)
  local e = num.dist(now, st.start)
  local share = prev_share(st.prev, e, p.window)
  local v = {allowed = admits(st, p, e, cost), retry = 0}
  if v.allowed then
    v.remaining = p.limit - cost - st.cur - share
    v.reset = reset_after(st, st.cur + cost, p.window, now)
    return v
  end
  v.remaining = math.max(0, math.max(0, p.limit - st.cur) - share)
  v.reset = reset_after(st, st.cur, p.window, now)
  if cost > p.limit then
    v.retry = -1
  else
    local off = retry_offset(st, p, cost)
    v.retry = math.max(1, num.delay(st.start, off, now))
  end
  return v
end

function sliding_counter.commit(st, p, now, cost)
  roll(st, p.window, now)
  st.cur = st.cur + cost
end

function sliding_counter.expiry(st, p)
  return st.start + 2 * p.window
end
