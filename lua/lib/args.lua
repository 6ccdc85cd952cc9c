-- lib/args.lua - checks and parses the ARGV of the ratelimiter scripts.
--
-- ARGV (after the algorithm name, for multi_window.lua):
--   cost, n_windows, then per window: limit, duration_ms, burst, log_slots.
-- Every value is a plain decimal integer (no sign, no exponent, no spaces).
-- The ranges are those of include/ratelimiter.h; burst 0 means the limit and
-- log_slots 0 means 32, and a sliding-log window keeps min(log_slots, limit)
-- entries, at least 2. burst matters only to the token bucket and log_slots
-- only to the sliding log, but both are checked for every algorithm.
local args = {}

args.LIMIT_MAX = 1099511627776 -- 2^40
args.LOG_LIMIT_MAX = 4294967295 -- 2^32 - 1
args.COST_MAX = 1099511627776
args.DURATION_MAX = 31622400000 -- 366 days
args.LOG_DURATION_MAX = 4294967295
args.LOG_SLOTS_DEFAULT = 32
args.LOG_SLOTS_MIN = 2
args.LOG_SLOTS_MAX = 1024
-- Token bucket: B * W / L (how far ahead of now the TAT can get) must stay
-- below 2^50 ms so that every time the script handles is below 2^53.
args.GCRA_AHEAD_MAX = 1125899906842624 -- 2^50
args.MAX_WINDOWS = 8
args.PER_WINDOW = 4

-- An integer as text, without an exponent.
function args.show(n)
  return string.format('%.0f', n)
end

-- The error reply for a bad argument.
function args.error(what)
  return redis.error_reply('ERR ratelimiter: ' .. what)
end

-- The algorithm ARGV[1] names, looked up in algorithms; or nil and what
-- is wrong (the name is echoed only when short and plain, never arbitrary
-- bytes into an error reply).
function args.algorithm(algorithms, what)
  local name = ARGV[1] or ''
  local alg = algorithms[name]
  if alg then
    return alg
  end
  if #name > 32 or not string.find(name, '^[%w_]*$') then
    name = '?'
  end
  return nil, what .. ' "' .. name .. '"'
end

-- ARGV[i] as an integer in [lo, hi], or nil and what is wrong.
function args.int(i, name, lo, hi)
  local s = ARGV[i]
  if s == nil then
    return nil, name .. ' is missing'
  end
  if #s == 0 or #s > 16 or not string.find(s, '^%d+$') then
    return nil, name .. ' is not a decimal integer'
  end
  local n = tonumber(s)
  if n < lo or n > hi then
    return nil, name .. ' ' .. s .. ' is outside ' .. args.show(lo) .. '..' ..
      args.show(hi)
  end
  return n
end

-- One window's four values, starting at ARGV[i]; nil and what is wrong.
local function parse_window(i, w, alg)
  local is_log = alg == 'sliding_log'
  local pfx = 'window ' .. w .. ' '
  local limit, duration, burst, slots, err
  limit, err = args.int(i, pfx .. 'limit', 1,
    is_log and args.LOG_LIMIT_MAX or args.LIMIT_MAX)
  if not limit then return nil, err end
  duration, err = args.int(i + 1, pfx .. 'duration_ms', 1,
    is_log and args.LOG_DURATION_MAX or args.DURATION_MAX)
  if not duration then return nil, err end
  burst, err = args.int(i + 2, pfx .. 'burst', 0, args.LIMIT_MAX)
  if not burst then return nil, err end
  slots, err = args.int(i + 3, pfx .. 'log_slots', 0, args.LOG_SLOTS_MAX)
  if not slots then return nil, err end
  if slots == 0 then
    slots = args.LOG_SLOTS_DEFAULT
  elseif slots < args.LOG_SLOTS_MIN then
    return nil, pfx .. 'log_slots ' .. slots .. ' is outside ' ..
      args.LOG_SLOTS_MIN .. '..' .. args.LOG_SLOTS_MAX
  end
  -- A log of L entries is already exact for limit L (policy.c,
  -- log_slots_for): the same rule, so a configured or an already resolved
  -- value gives the same S.
  if slots > limit then
    slots = math.max(args.LOG_SLOTS_MIN, limit)
  end
  if burst == 0 then
    burst = limit
  end
  if alg == 'token_bucket' and
      not num.mul_le(burst, duration, args.GCRA_AHEAD_MAX, limit) then
    return nil, pfx .. 'burst * duration_ms / limit is above 2^50 ms'
  end
  return {limit = limit, window = duration, burst = burst, slots = slots}
end

-- Parses ARGV from index first on: cost, n_windows and the windows of
-- algorithm alg. Returns cost, windows; or nil, what is wrong. The scripts
-- take one key; max_keys allows more (lease.lua's push key).
function args.parse(first, alg, max_keys)
  if #KEYS < 1 or #KEYS > (max_keys or 1) then
    return nil, 'expected ' .. (max_keys and ('1 to ' .. max_keys .. ' keys')
      or '1 key') .. ', got ' .. #KEYS
  end
  local cost, n, err
  cost, err = args.int(first, 'cost', 1, args.COST_MAX)
  if not cost then return nil, err end
  n, err = args.int(first + 1, 'n_windows', 1, args.MAX_WINDOWS)
  if not n then return nil, err end
  local want = first + 1 + n * args.PER_WINDOW
  if #ARGV ~= want then
    return nil, 'expected ' .. want .. ' arguments for ' .. n ..
      ' windows, got ' .. #ARGV
  end
  local windows = {}
  for w = 1, n do
    local p
    p, err = parse_window(first + 2 + (w - 1) * args.PER_WINDOW, w - 1, alg)
    if not p then return nil, err end
    windows[w] = p
  end
  return cost, windows
end
