-- lib/num.lua - exact integer arithmetic for the ratelimiter scripts.
--
-- Lua 5.1 numbers are doubles: integers are exact only below 2^53. The
-- algorithms' state and results stay below that (docs/Redis.md), but some
-- intermediate products do not: prev * (W - e), c * W, B * W, ahead * L can
-- reach 2^81 with limits up to 2^40 and windows up to ~2^35 ms. Those go
-- through "wide" numbers: arrays of WIDE_LIMBS limbs in base 2^24, least
-- significant first, every limb in [0, 2^24). A limb product is below 2^48
-- and a column of three of them below 2^50, so every step is exact.
--
-- Plain numbers given to these functions are integers in [0, 2^53).
local num = {}

local LIMB = 16777216 -- 2^24
local WIDE_LIMBS = 6  -- up to 2^144: products of two plain numbers

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

-- The wide form of a plain number.
function num.wide(a)
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
  local x, y = num.wide(a), num.wide(b)
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

-- x + y for wide numbers.
function num.add(x, y)
  local r = {}
  for i = 1, WIDE_LIMBS do
    r[i] = x[i] + y[i]
  end
  return normalise(r)
end

-- x - y for wide numbers with x >= y.
function num.sub(x, y)
  local r = {}
  for i = 1, WIDE_LIMBS do
    r[i] = x[i] - y[i]
  end
  return normalise(r)
end

-- -1, 0 or 1 as x <, =, > y.
function num.cmp(x, y)
  for i = WIDE_LIMBS, 1, -1 do
    if x[i] ~= y[i] then
      return x[i] < y[i] and -1 or 1
    end
  end
  return 0
end

-- The nearest double to x (only used as a first guess).
local function approx(x)
  local v = 0
  for i = WIDE_LIMBS, 1, -1 do
    v = v * LIMB + x[i]
  end
  return v
end

-- min(floor(x / d), cap) for a wide x, plain d >= 1 and cap < 2^53.
-- A floating-point guess is within a few units of the quotient (which is
-- below 2^53 here); exact comparisons then correct it.
function num.div(x, d, cap)
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
  local q = num.div(x, d, 9007199254740991) -- 2^53 - 1
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
