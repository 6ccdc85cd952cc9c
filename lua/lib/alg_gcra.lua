-- lib/alg_gcra.lua - the token bucket as GCRA (docs/Algorithms.md, "Token
-- bucket (GCRA)"; mirrors src/alg_gcra.c).
--
-- State, 16 bytes little-endian: int64 tat_ms, uint64 tat_frac: the
-- theoretical arrival time TAT = tat_ms + tat_frac / L, 0 <= tat_frac < L.
-- A time "ahead" of now is (ms - now) * L + frac, up to 2^90: wide numbers.
-- lib/args.lua keeps B * W / L below 2^50 so every time here is below 2^53.
local gcra = {name = 'token_bucket'}

local FORMAT = '<i8I8'
local BIG = 9007199254740991 -- 2^53 - 1: "no cap" for num.div

function gcra.size()
  return 16
end

function gcra.load(blob, pos)
  local ms, frac = struct.unpack(FORMAT, blob, pos)
  return {ms = ms, frac = frac}
end

function gcra.dump(st)
  return struct.pack(FORMAT, st.ms, st.frac)
end

-- The stored TAT; a fraction >= L (never written here) rounds up.
local function tat(st, limit)
  if st.frac >= limit then
    return st.ms + 1, 0
  end
  return st.ms, st.frac
end

-- Step 1: base = max(TAT, now).
local function base_of(ms, frac, now)
  if ms > now or (ms == now and frac > 0) then
    return ms, frac
  end
  return now, 0
end

-- Step 2: t + c * W / L, carrying the fraction (only for c <= B, so the
-- quotient is below 2^50).
local function add(ms, frac, cost, p)
  local q, r = num.divmod(num.mul(cost, p.window), p.limit)
  ms, frac = ms + q, frac + r
  if frac >= p.limit then
    frac = frac - p.limit
    ms = ms + 1
  end
  return ms, frac
end

-- (t - now) * L + frac, wide.
local function ahead(ms, frac, now, limit)
  return num.add(num.mul(num.dist(ms, now), limit), frac)
end

-- Step 5: floor((B * W - ahead) / W), or 0 when negative.
local function remaining(a, p)
  if num.cmp(a, num.mul(p.burst, p.window)) >= 0 then
    return 0
  end
  return p.burst - num.div_ceil(a, p.window, p.burst)
end

-- Step 5: ceil(t - now).
local function until_t(ms, frac, now)
  return num.dist(ms, now) + (frac > 0 and 1 or 0)
end

local function report(v, ms, frac, now, p)
  v.remaining = remaining(ahead(ms, frac, now, p.limit), p)
  v.reset = until_t(ms, frac, now)
end

function gcra.evaluate(st, p, now, cost)
  local ms, frac = tat(st, p.limit)
  local bms, bfrac = base_of(ms, frac, now)
  local v = {allowed = false, retry = 0}
  if cost > p.burst then
    report(v, bms, bfrac, now, p)
    v.retry = -1
    return v
  end
  local nms, nfrac = add(bms, bfrac, cost, p)
  local a = ahead(nms, nfrac, now, p.limit)
  local bw = num.mul(p.burst, p.window)
  v.allowed = num.cmp(a, bw) <= 0
  if v.allowed then
    report(v, nms, nfrac, now, p)
    return v
  end
  report(v, bms, bfrac, now, p)
  -- ceil(new - B * W / L - now) = ceil((ahead - B * W) / L).
  v.retry = math.max(1, num.div_ceil(num.sub(a, bw), p.limit, BIG))
  return v
end

function gcra.commit(st, p, now, cost)
  local ms, frac = tat(st, p.limit)
  ms, frac = base_of(ms, frac, now)
  st.ms, st.frac = add(ms, frac, cost, p)
end

function gcra.expiry(st)
  return st.ms + (st.frac > 0 and 1 or 0)
end
