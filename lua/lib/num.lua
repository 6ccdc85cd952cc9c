-- lib/num.lua - exact integer arithmetic for the ratelimiter scripts.
--
-- Lua 5.1 numbers are doubles: integers are exact only below 2^53. The
-- algorithms' state and results stay below that (docs/Redis.md), but some
-- intermediate products do not: prev * (W - e), c * W, B * W, ahead * L can
-- reach 2^81 with limits up to 2^40 and windows up to ~2^35 ms.
--
-- Those go through "wide" values: a wide value is either a plain number
-- below 2^53 (the common case, computed directly) or, when it is larger, an
-- array of WIDE_LIMBS limbs in base 2^24, least significant first, every
-- limb in [0, 2^24). A limb product is below 2^48 and a column of three of
-- them below 2^50, so every step is exact. A double product below 2^53 is
-- exact, and one of at least 2^53 is never rounded below 2^53, so
-- "a * b < 2^53" decides the representation exactly.
--
-- Plain numbers given to these functions are integers in [0, 2^53).
local num = {}

local LIMB = 16777216 -- 2^24
local WIDE_LIMBS = 6  -- up to 2^144: products of two plain numbers
local EXACT = 9007199254740992 -- 2^53

-- a mod b for integers a >= 0, b > 0, exact below 2^53 whatever the
-- rounding of a / b (Lua's % is a - floor(a / b) * b).
function num.mod(a, b)
  local r = a - math.floor(a / b) * b
  if r < 0 then
    r = r + b
  elseif r >= b then
    r = r - b
  end
  return r
end

-- The limbs of a plain number, or of a wide value.
local function limbs(a)
  if type(a) == 'table' then
    return a
  end
  local x = {}
  for i = 1, WIDE_LIMBS do
    local limb = a % LIMB -- exact: LIMB is a power of two
    x[i] = limb
    a = (a - limb) / LIMB
  end
  return x
end

-- Propagates carries so that every limb is in [0, 2^24); limbs may come in
-- negative (after a subtraction) or above 2^24, but below 2^53.
local function normalise(x)
  local carry = 0
  for i = 1, WIDE_LIMBS do
    local v = x[i] + carry
    local limb = v % LIMB
    x[i] = limb
    carry = (v - limb) / LIMB
  end
  return x
end

-- a * b, exactly.
function num.mul(a, b)
  local p = a * b
  if p < EXACT then
    return p
  end
  local x, y = limbs(a), limbs(b)
  local r = {}
  for i = 1, WIDE_LIMBS do
    r[i] = 0
  end
  -- Plain numbers have at most three non-zero limbs (2^53 < 2^72).
  for i = 1, 3 do
    if x[i] ~= 0 then
      for j = 1, 3 do
        r[i + j - 1] = r[i + j - 1] + x[i] * y[j]
      end
    end
  end
  return normalise(r)
end

-- x + y for wide values.
function num.add(x, y)
  if type(x) == 'number' and type(y) == 'number' and x + y < EXACT then
    return x + y
  end
  x, y = limbs(x), limbs(y)
  local r = {}
  for i = 1, WIDE_LIMBS do
    r[i] = x[i] + y[i]
  end
  return normalise(r)
end

-- x - y for wide values with x >= y.
function num.sub(x, y)
  if type(x) == 'number' and type(y) == 'number' then
    return x - y
  end
  x, y = limbs(x), limbs(y)
  local r = {}
  for i = 1, WIDE_LIMBS do
    r[i] = x[i] - y[i]
  end
  return normalise(r)
end

-- -1, 0 or 1 as x <, =, > y.
function num.cmp(x, y)
  if type(x) == 'number' and type(y) == 'number' then
    return x < y and -1 or (x > y and 1 or 0)
  end
  x, y = limbs(x), limbs(y)
  for i = WIDE_LIMBS, 1, -1 do
    if x[i] ~= y[i] then
      return x[i] < y[i] and -1 or 1
    end
  end
  return 0
end

-- The nearest double to x (only used as a first guess), or x if plain.
local function approx(x)
  if type(x) == 'number' then
    return x
  end
  local v = 0
  for i = WIDE_LIMBS, 1, -1 do
    v = v * LIMB + x[i]
  end
  return v
end

-- floor(x / d) for plain x and d >= 1: the double quotient, corrected by
-- one where it rounded across an integer.
local function div_plain(x, d)
  local q = math.floor(x / d)
  if q * d > x then
    q = q - 1
  elseif (q + 1) * d <= x then
    q = q + 1
  end
  return q
end

-- min(floor(x / d), cap) for a wide x, plain d >= 1 and cap < 2^53.
-- A floating-point guess is within a few units of the quotient (which is
-- below 2^53 here); exact comparisons then correct it.
function num.div(x, d, cap)
  if type(x) == 'number' then
    return math.min(div_plain(x, d), cap)
  end
  if num.cmp(x, num.mul(cap, d)) >= 0 then
    return cap
  end
  local q = math.floor(approx(x) / d)
  if q >= cap then
    q = cap - 1
  elseif q < 0 then
    q = 0
  end
  while q > 0 and num.cmp(num.mul(q, d), x) > 0 do
    q = q - 1
  end
  while num.cmp(num.mul(q + 1, d), x) <= 0 do
    q = q + 1
  end
  return q
end

-- min(ceil(x / d), cap), same conditions as num.div.
function num.div_ceil(x, d, cap)
  local q = num.div(x, d, cap)
  if q < cap and num.cmp(num.mul(q, d), x) < 0 then
    q = q + 1
  end
  return q
end

-- min(floor(a * b / d), cap) for plain a, b, d >= 1, cap < 2^53.
function num.muldiv(a, b, d, cap)
  return num.div(num.mul(a, b), d, cap)
end

-- a * b <= c * d, exactly.
function num.mul_le(a, b, c, d)
  return num.cmp(num.mul(a, b), num.mul(c, d)) <= 0
end

-- floor(x / d) and x mod d for a wide x and plain d >= 1, when the
-- quotient is below 2^53.
function num.divmod(x, d)
  local q = num.div(x, d, EXACT - 1)
  return q, approx(num.sub(x, num.mul(q, d)))
end

-- The delay from now until time base + add, or 0 if that is not later than
-- now (rl__until in src/saturate.h). All three are plain.
function num.delay(base, add, now)
  if base >= now then
    return base - now + add
  end
  return math.max(0, add - (now - base))
end

-- hi - lo as a distance: hi - lo when hi > lo, else 0 (rl__dist).
function num.dist(hi, lo)
  return hi > lo and hi - lo or 0
end
