-- Circuit breaker state, shared by the cb_* scripts (prepended after the prelude).
-- KEYS[1] s: hash  st (0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled),
--                  ep (epoch: TIME in us when created, +1 per transition),
--                  ou (open until, us), oc (opens in a row), ok / sl (trial successes,
--                  slow trial successes), cf (consecutive failures), ws (window spec)
-- KEYS[2] w: hash  the window's counts (time buckets, or n/f/s of a count window)
-- KEYS[3] r: string  a count window's ring of outcomes, one byte per call
-- KEYS[4] hp: zset  trial permit id -> lease end (us)
local S, W, R, HP = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED = 0, 1, 2, 3, 4
-- Transitions are published on <prefix>:cb:{<name>}:ev (a channel is not a key).
local CHANNEL = string.sub(S, 1, -2) .. 'ev'

-- The settings a caller sends, as one argument: "key=value" words, "-" for none.
local function settings(text)
  local out = {}
  for key, value in string.gmatch(text, '(%w+)=(%S+)') do
    if value ~= '-' then
      out[key] = value
    end
  end
  return out
end

local function load(now)
  local v = redis.call('HMGET', S, 'st', 'ep', 'ou', 'oc', 'ok', 'sl', 'cf', 'ws')
  if not v[2] then
    return {st = CLOSED, ep = now, ou = 0, oc = 0, ok = 0, sl = 0, cf = 0, ws = false, new = true}
  end
  return {
    st = tonumber(v[1]), ep = tonumber(v[2]), ou = tonumber(v[3]) or 0,
    oc = tonumber(v[4]) or 0, ok = tonumber(v[5]) or 0, sl = tonumber(v[6]) or 0,
    cf = tonumber(v[7]) or 0, ws = v[8], new = false,
  }
end

-- Key expiry is garbage collection only: a state set by hand stays until changed.
local function keep(b, idle_ms)
  if b.st == FORCED_OPEN or b.st == DISABLED then
    redis.call('PERSIST', S)
  else
    redis.call('PEXPIRE', S, idle_ms)
  end
end

-- A new state and epoch; the window and the trial permits start over.
local function transition(b, to, now, open_us, idle_ms)
  b.st = to
  b.ep = b.ep + 1
  if to == OPEN then
    b.oc = b.oc + 1
    b.ou = now + open_us
  elseif to == CLOSED or to == DISABLED then
    b.oc = 0
  end
  b.ok, b.sl, b.cf = 0, 0, 0
  redis.call('HSET', S, 'st', to, 'ep', int(b.ep), 'ou', int(b.ou), 'oc', b.oc,
    'ok', 0, 'sl', 0, 'cf', 0)
  redis.call('DEL', W, R, HP)
  keep(b, idle_ms)
  local remaining = 0
  if to == OPEN then
    remaining = b.ou - now
  end
  redis.call('PUBLISH', CHANNEL, to .. ' ' .. int(b.ep) .. ' ' .. int(remaining) .. ' ' .. b.oc)
end

-- Windows. spec is "t<bucket width us>" (ten time buckets, fields <slot>b (bucket
-- number), <slot>c, <slot>f, <slot>s (calls, failures, slow calls), slot = bucket % 10)
-- or "c<size>" (fields n, f, s: calls ever, failures and slow calls among the last
-- size; the ring R holds one outcome code per position).
-- Outcome codes: 0 success, 1 failure, 2 slow success, 3 slow failure.

-- Count an outcome (no totals: a plain success can never trip the breaker).
local function count(spec, now, code)
  if string.sub(spec, 1, 1) == 'c' then
    local size = tonumber(string.sub(spec, 2))
    local v = redis.call('HMGET', W, 'n', 'f', 's')
    local n, f, s = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0
    local pos = n % size
    if n >= size then
      local old = tonumber(redis.call('GETRANGE', R, pos, pos)) or 0
      f = f - old % 2
      s = s - math.floor(old / 2)
    end
    redis.call('SETRANGE', R, pos, tostring(code))
    redis.call('HSET', W, 'n', int(n + 1), 'f', f + code % 2, 's', s + math.floor(code / 2))
    return
  end
  local current = math.floor(now / tonumber(string.sub(spec, 2)))
  local slot = tostring(current % 10)
  if tonumber(redis.call('HGET', W, slot .. 'b')) == current then
    redis.call('HINCRBY', W, slot .. 'c', 1)
    if code % 2 == 1 then
      redis.call('HINCRBY', W, slot .. 'f', 1)
    end
    if code >= 2 then
      redis.call('HINCRBY', W, slot .. 's', 1)
    end
  else
    redis.call('HSET', W, slot .. 'b', int(current), slot .. 'c', 1, slot .. 'f', code % 2,
      slot .. 's', math.floor(code / 2))
  end
end

-- The window's totals: calls, failures, slow calls.
local function totals(spec, now)
  if string.sub(spec, 1, 1) == 'c' then
    local size = tonumber(string.sub(spec, 2))
    local v = redis.call('HMGET', W, 'n', 'f', 's')
    return math.min(tonumber(v[1]) or 0, size), tonumber(v[2]) or 0, tonumber(v[3]) or 0
  end
  local current = math.floor(now / tonumber(string.sub(spec, 2)))
  local flat = redis.call('HGETALL', W)
  local h = {}
  for i = 1, #flat, 2 do
    h[flat[i]] = tonumber(flat[i + 1])
  end
  local calls, failures, slow = 0, 0, 0
  for i = 0, 9 do
    local b = h[i .. 'b']
    if b ~= nil and b > current - 10 and b <= current then
      calls = calls + h[i .. 'c']
      failures = failures + h[i .. 'f']
      slow = slow + h[i .. 's']
    end
  end
  return calls, failures, slow
end
