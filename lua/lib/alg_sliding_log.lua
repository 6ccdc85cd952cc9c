-- lib/alg_sliding_log.lua - the exact sliding window as a bounded log
-- (docs/Algorithms.md, "Sliding window log"; mirrors src/alg_sliding_log.c
-- down to the bytes of unused slots, so the stored blob equals the C state).
--
-- State, 16 + 8 * S bytes little-endian: int64 base, uint32 len,
-- uint32 total, uint32 dt[S], uint32 n[S] (entry i: n[i] units admitted at
-- base + dt[i]). L and W are below 2^32, so plain doubles are exact here.
local sliding_log = {name = 'sliding_log'}

local U32 = 4294967295

function sliding_log.size(p)
  return 16 + 8 * p.slots
end

-- The first k uint32 values at pos, as a table.
local function read_u32s(blob, pos, k)
  if k == 0 then
    return {}
  end
  local t = {struct.unpack('<' .. string.rep('I4', k), blob, pos)}
  t[k + 1] = nil -- the next position, which struct.unpack adds
  return t
end

local function write_u32s(t, k)
  if k == 0 then
    return ''
  end
  return struct.pack('<' .. string.rep('I4', k), unpack(t, 1, k))
end

-- Only the entries in use are decoded. Every write of the algorithm lands
-- below the final len (see dump), so the bytes of the unused slots are
-- kept as they are, exactly as the C code leaves them.
function sliding_log.load(blob, pos, p)
  local s = p.slots
  local base, len, total = struct.unpack('<i8I4I4', blob, pos)
  local live = math.min(len, s)
  return {
    base = base, len = len, total = total,
    dt = read_u32s(blob, pos + 16, live),
    n = read_u32s(blob, pos + 16 + 4 * s, live),
    blob = blob, pos = pos, -- for the unused slots
  }
end

-- The entries in use, then the loaded bytes of the slots past them.
-- Evaluate and commit only write entries below the final len: dropping
-- moves entries down (the slots it vacates keep their old bytes, as
-- memmove leaves them), appending writes at len, merging within len.
function sliding_log.dump(st, p)
  local s, len = p.slots, st.len
  local dt_at = st.pos + 16
  local n_at = dt_at + 4 * s
  return struct.pack('<i8I4I4', st.base, len, st.total) ..
    write_u32s(st.dt, len) ..
    string.sub(st.blob, dt_at + 4 * len, n_at - 1) ..
    write_u32s(st.n, len) ..
    string.sub(st.blob, n_at + 4 * len, n_at + 4 * s - 1)
end

-- Never trust len beyond the array (sl_open).
local function open(st, slots)
  if st.len > slots then
    st.len = slots
  end
  if st.len == 0 then
    st.total = 0
  end
end

-- The time of entry i (1-based).
local function time_of(st, i)
  return st.base + st.dt[i]
end

-- Step 1: a now before the newest entry is treated as that entry's time.
local function effective_now(st, now)
  if st.len == 0 then
    return now
  end
  return math.max(now, time_of(st, st.len))
end

-- Drops the first k entries, which hold `units` units.
local function drop_front(st, k, units)
  local keep = st.len - k
  if keep == 0 then
    st.len, st.total = 0, 0
    return
  end
  for j = 1, keep do
    st.dt[j], st.n[j] = st.dt[j + k], st.n[j + k]
  end
  st.len = keep
  st.total = math.max(0, st.total - units)
end

-- Step 2: drops the entries with t <= now - W.
local function expire(st, now, window)
  local age = num.dist(now, st.base)
  if st.len == 0 or age < window then
    return
  end
  local cut = age - window
  local k, units = 0, 0
  while k < st.len and st.dt[k + 1] <= cut do
    units = units + st.n[k + 1]
    k = k + 1
  end
  if k > 0 then
    drop_front(st, k, units)
  end
end

local function normalise(st, now, window)
  local eff = effective_now(st, now)
  expire(st, eff, window)
  return eff
end

-- Step 5, denied with c <= L: the entry whose expiry frees `need` units.
local function retry_after(st, need, window, now)
  local sum, i = 0, 1
  while i < st.len do
    sum = sum + st.n[i]
    if sum >= need then
      break
    end
    i = i + 1
  end
  return math.max(1, num.delay(time_of(st, i), window, now))
end

function sliding_log.evaluate(st, p, now, cost)
  open(st, p.slots)
  local eff = normalise(st, now, p.window)
  local room = math.max(0, p.limit - st.total)
  local v = {allowed = cost <= room, retry = 0}
  if v.allowed then
    v.remaining = room - cost
    v.reset = num.delay(eff, p.window, now)
    return v
  end
  v.remaining = room
  v.reset = st.len > 0 and num.delay(time_of(st, st.len), p.window, now) or 0
  if cost > p.limit or st.len == 0 then
    v.retry = -1
  else
    v.retry = retry_after(st, st.total + cost - p.limit, p.window, now)
  end
  return v
end

-- Offsets relative to the oldest entry again (live entries span < W).
local function rebase(st)
  local shift = st.dt[1]
  for i = 1, st.len do
    st.dt[i] = st.dt[i] - shift
  end
  st.base = st.base + shift
end

-- The pair (i, i + 1) with the smallest gap among the stored entries
-- followed by a new one at offset d; ties: the oldest. i = len is the pair
-- (newest stored, new).
local function smallest_gap(st, d)
  local best = st.len
  local gap = d - st.dt[st.len]
  for i = st.len - 1, 1, -1 do
    local gi = st.dt[i + 1] - st.dt[i]
    if gi <= gap then
      gap, best = gi, i
    end
  end
  return best
end

-- Step 4 with a full log: merges the pair with the smallest gap into its
-- later time, making room for (d, c) at the end.
local function merge_append(st, d, cost)
  local len = st.len
  local i = smallest_gap(st, d)
  if i == len then
    st.dt[i] = d
    st.n[i] = math.min(U32, st.n[i] + cost)
    return
  end
  st.n[i + 1] = math.min(U32, st.n[i + 1] + st.n[i])
  for j = i, len - 1 do
    st.dt[j], st.n[j] = st.dt[j + 1], st.n[j + 1]
  end
  st.dt[len] = d
  st.n[len] = math.min(U32, cost)
end

-- Step 4 for a time later than every entry: appends (now, c).
local function append(st, now, cost, slots)
  if st.len == 0 then
    st.base = now
  elseif num.dist(now, st.base) > U32 then
    rebase(st)
  end
  local d = math.min(U32, num.dist(now, st.base))
  if st.len == slots then
    merge_append(st, d, cost)
    return
  end
  st.len = st.len + 1
  st.dt[st.len] = d
  st.n[st.len] = math.min(U32, cost)
end

function sliding_log.commit(st, p, now, cost)
  open(st, p.slots)
  local eff = normalise(st, now, p.window)
  if st.len > 0 and time_of(st, st.len) == eff then
    st.n[st.len] = math.min(U32, st.n[st.len] + cost)
  else
    append(st, eff, cost, p.slots)
  end
  st.total = math.min(U32, st.total + cost)
end

function sliding_log.expiry(st, p)
  if st.len == 0 then
    return 0
  end
  return st.base + st.dt[math.min(st.len, p.slots)] + p.window
end
