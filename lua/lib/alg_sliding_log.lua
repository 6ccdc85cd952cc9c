-- lib/alg_sliding_log.lua - the exact sliding window as a bounded log
-- (docs/Algorithms.md, "Sliding window log"; mirrors src/alg_sliding_log.c
-- down to the bytes of unused slots, so the stored blob equals the C state).
--
-- State, 16 + 8 * S bytes little-endian: int64 base, uint32 total,
-- uint16 head, uint16 len, uint32 dt[S], uint32 n[S]. The entries in use are
-- the len from index head on: entry i says n[head + i] units were admitted
-- at base + dt[head + i]. S is the window's log_slots as lib/args.lua
-- resolves it (min(log_slots, L), at least 2). L and W are below 2^32, so
-- plain doubles are exact here.
local sliding_log = {name = 'sliding_log'}

local U32 = 4294967295
local HEADER = '<i8I4I2I2'

-- Lease reservations (lua/lease.lua; Redis only: the C state has none).
-- A lease's units may be spent at any time from its grant to its end, so
-- each counts in every window from the grant until W after the end: at
-- least as long as the exact log keeps it, whenever it is spent. They
-- follow the windows' states in the stored string, only while there are
-- any: uint32 n, then n x (int64 granted_at, uint32 valid_ms, uint32
-- units). Every window's state points at the one list (st.rsv).
sliding_log.RSV_MAX = 32
local RSV_HEAD, RSV_ENTRY, RSV_SIZE = '<I4', '<i8I4I4', 16
local NONE = {}

function sliding_log.size(p)
  return 16 + 8 * p.slots
end

-- k uint32 values at pos, as a table indexed from 1.
local function read_u32s(blob, pos, k)
  local t = {struct.unpack('<' .. string.rep('I4', k), blob, pos)}
  t[k + 1] = nil -- the next position, which struct.unpack adds
  return t
end

local function write_u32s(t, k)
  return struct.pack('<' .. string.rep('I4', k), unpack(t, 1, k))
end

-- The whole arrays are decoded: moving entries leaves stale copies in the
-- slots behind them, as memmove does in C, and those bytes are kept.
function sliding_log.load(blob, pos, p)
  local s = p.slots
  local base, total, head, len = struct.unpack(HEADER, blob, pos)
  return {
    base = base, total = total, head = head, len = len,
    dt = read_u32s(blob, pos + 16, s),
    n = read_u32s(blob, pos + 16 + 4 * s, s),
  }
end

function sliding_log.dump(st, p)
  return struct.pack(HEADER, st.base, st.total, st.head, st.len) ..
    write_u32s(st.dt, p.slots) .. write_u32s(st.n, p.slots)
end

-- The array index (1-based) of entry i (0-based from the oldest).
local function at(st, i)
  return st.head + i + 1
end

-- Never index past the arrays, whatever the bytes say (sl_open).
local function open(st, slots)
  if st.len > slots then
    st.len = slots
  end
  if st.head > slots - st.len or st.len == 0 then
    st.head = 0
  end
  if st.len == 0 then
    st.total = 0
  end
end

-- The time of entry i.
local function time_of(st, i)
  return st.base + st.dt[at(st, i)]
end

-- Step 1: a now before the newest entry is treated as that entry's time.
local function effective_now(st, now)
  if st.len == 0 then
    return now
  end
  return math.max(now, time_of(st, st.len - 1))
end

-- Drops the first k entries, which hold `units` units: only head moves.
local function drop_front(st, k, units)
  local keep = st.len - k
  st.head = keep > 0 and st.head + k or 0
  st.len = keep
  st.total = keep > 0 and math.max(0, st.total - units) or 0
end

-- Moves the entries to the start of the arrays (memmove: the slots past
-- them keep what they held).
local function compact(st)
  for j = 1, st.len do
    st.dt[j], st.n[j] = st.dt[st.head + j], st.n[st.head + j]
  end
  st.head = 0
end

-- Step 2: drops the entries with t <= now - W.
local function expire(st, now, window)
  local age = num.dist(now, st.base)
  if st.len == 0 or age < window then
    return
  end
  local cut = age - window
  local k, units = 0, 0
  while k < st.len and st.dt[at(st, k)] <= cut do
    units = units + st.n[at(st, k)]
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

-- Units the reservations hold in a window of length `window` at now.
local function reserved(st, window, now)
  local sum = 0
  for _, r in ipairs(st.rsv or NONE) do
    if r.at + r.valid + window > now then
      sum = sum + r.units
    end
  end
  return sum
end

-- Step 5, denied with c <= L: the entry whose expiry frees `need` units.
local function retry_after(st, need, window, now)
  local sum, i = 0, 0
  while i + 1 < st.len do
    sum = sum + st.n[at(st, i)]
    if sum >= need then
      break
    end
    i = i + 1
  end
  return math.max(1, num.delay(time_of(st, i), window, now))
end

-- retry_after with reservations: the log's entries and the reservations
-- held at now, in the order they leave the window.
local function retry_after_held(st, need, window, now)
  local out = {}
  for i = 0, st.len - 1 do
    out[#out + 1] = {time_of(st, i), st.n[at(st, i)]}
  end
  for _, r in ipairs(st.rsv) do
    if r.at + r.valid + window > now then
      out[#out + 1] = {r.at + r.valid, r.units}
    end
  end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  local sum = 0
  for _, e in ipairs(out) do
    sum = sum + e[2]
    if sum >= need then
      return math.max(1, num.delay(e[1], window, now))
    end
  end
  return -1
end

-- When the last reservation held at now leaves the window (0: none).
local function reservations_reset(st, window, now)
  local reset = 0
  for _, r in ipairs(st.rsv or NONE) do
    reset = math.max(reset, num.delay(r.at + r.valid, window, now))
  end
  return reset
end

function sliding_log.evaluate(st, p, now, cost)
  open(st, p.slots)
  local eff = normalise(st, now, p.window)
  local held = reserved(st, p.window, now)
  local room = math.max(0, p.limit - st.total - held)
  local v = {allowed = cost <= room, retry = 0}
  if v.allowed then
    v.remaining = room - cost
    v.reset = math.max(num.delay(eff, p.window, now),
      reservations_reset(st, p.window, now))
    return v
  end
  v.remaining = room
  v.reset = math.max(st.len > 0 and
    num.delay(time_of(st, st.len - 1), p.window, now) or 0,
    reservations_reset(st, p.window, now))
  if cost > p.limit or (st.len == 0 and held == 0) then
    v.retry = -1
  elseif held > 0 then
    v.retry = retry_after_held(st, st.total + held + cost - p.limit,
      p.window, now)
  else
    v.retry = retry_after(st, st.total + cost - p.limit, p.window, now)
  end
  return v
end

-- Offsets relative to the oldest entry again (live entries span < W).
local function rebase(st)
  local shift = st.dt[at(st, 0)]
  for i = 0, st.len - 1 do
    st.dt[at(st, i)] = st.dt[at(st, i)] - shift
  end
  st.base = st.base + shift
end

-- The pair (i, i + 1) with the smallest gap among the stored entries
-- followed by a new one at offset d; of equal gaps the oldest. i = len - 1
-- is the pair (newest stored, new).
local function smallest_gap(st, d)
  local best, gap = 0, U32
  for i = 0, st.len - 2 do
    local gi = st.dt[at(st, i + 1)] - st.dt[at(st, i)]
    if gi < gap then
      gap, best = gi, i
    end
  end
  if d - st.dt[at(st, st.len - 1)] < gap then
    return st.len - 1
  end
  return best
end

-- Step 4 with a full log (so head = 0): merges the pair with the smallest
-- gap into its later time, making room for (d, c) at the end.
local function merge_append(st, d, cost)
  local len = st.len
  local i = smallest_gap(st, d)
  local dt, n = st.dt, st.n
  if i == len - 1 then
    dt[at(st, i)] = d
    n[at(st, i)] = math.min(U32, n[at(st, i)] + cost)
    return
  end
  n[at(st, i + 1)] = math.min(U32, n[at(st, i + 1)] + n[at(st, i)])
  for j = i, len - 2 do
    dt[at(st, j)], n[at(st, j)] = dt[at(st, j + 1)], n[at(st, j + 1)]
  end
  dt[at(st, len - 1)] = d
  n[at(st, len - 1)] = math.min(U32, cost)
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
  if st.head + st.len == slots then
    compact(st)
  end
  st.dt[at(st, st.len)] = d
  st.n[at(st, st.len)] = math.min(U32, cost)
  st.len = st.len + 1
end

function sliding_log.commit(st, p, now, cost)
  open(st, p.slots)
  local eff = normalise(st, now, p.window)
  local last = at(st, st.len - 1)
  if st.len > 0 and st.base + st.dt[last] == eff then
    st.n[last] = math.min(U32, st.n[last] + cost)
  else
    append(st, eff, cost, p.slots)
  end
  st.total = math.min(U32, st.total + cost)
end

function sliding_log.expiry(st, p)
  local e = 0
  for _, r in ipairs(st.rsv or NONE) do
    e = math.max(e, r.at + r.valid + p.window)
  end
  if st.len == 0 then
    return e
  end
  local last = math.min(st.head + st.len - 1, p.slots - 1)
  return math.max(e, st.base + st.dt[last + 1] + p.window)
end

-- The reservations stored after the states from pos on (states[i].rsv);
-- false if those bytes are not a list of them.
function sliding_log.tail_load(blob, pos, states)
  local rsv = {}
  if pos <= #blob then
    if #blob - pos + 1 < 4 then
      return false
    end
    local n = struct.unpack(RSV_HEAD, blob, pos)
    if n > sliding_log.RSV_MAX or #blob - pos + 1 ~= 4 + n * RSV_SIZE then
      return false
    end
    for j = 1, n do
      local a, v, u = struct.unpack(RSV_ENTRY, blob,
        pos + 4 + (j - 1) * RSV_SIZE)
      rsv[j] = {at = a, valid = v, units = u}
    end
  end
  for _, st in ipairs(states) do
    st.rsv = rsv
  end
  return true
end

-- The longest window.
local function longest(windows)
  local w = 0
  for _, p in ipairs(windows) do
    w = math.max(w, p.window)
  end
  return w
end

-- Drops the reservations that no window holds at now any more, and those
-- with no units left.
local function prune(rsv, windows, now)
  local w, j = longest(windows), 1
  while j <= #rsv do
    local r = rsv[j]
    if r.units == 0 or r.at + r.valid + w <= now then
      table.remove(rsv, j)
    else
      j = j + 1
    end
  end
end

-- The bytes that follow the states: the reservations held at now ('' when
-- there are none, so that the string equals the C state).
function sliding_log.tail_dump(states, windows, now)
  local rsv = states[1].rsv
  if not rsv then
    return ''
  end
  prune(rsv, windows, now)
  if #rsv == 0 then
    return ''
  end
  local parts = {struct.pack(RSV_HEAD, #rsv)}
  for _, r in ipairs(rsv) do
    parts[#parts + 1] = struct.pack(RSV_ENTRY, r.at, r.valid, r.units)
  end
  return table.concat(parts)
end

-- A reservation for a lease granted at now for valid ms, holding no units
-- yet (the caller sets .units); nil when the list is full.
function sliding_log.reserve(states, windows, now, valid)
  local rsv = states[1].rsv
  prune(rsv, windows, now)
  if #rsv >= sliding_log.RSV_MAX then
    return nil
  end
  rsv[#rsv + 1] = {at = now, valid = valid, units = 0}
  return rsv[#rsv]
end

-- Gives back `units` of the leases granted at granted_at (all of their
-- units if fewer): they were not spent. Returns whether any went back.
function sliding_log.unreserve(states, granted_at, units)
  local back = false
  for _, r in ipairs(states[1].rsv or NONE) do
    if units > 0 and r.at == granted_at and r.units > 0 then
      local k = math.min(units, r.units)
      r.units, units, back = r.units - k, units - k, true
    end
  end
  return back
end
