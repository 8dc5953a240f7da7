-- Circuit breaker state, shared by the cb_* scripts (prepended after the prelude).
-- KEYS[1] s: hash  st (0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled),
--                  ep (epoch: TIME in us when created, +1 per transition),
--                  ou (open until, us), oc (opens in a row), ok / sl (trial successes,
--                  slow trial successes), cf (consecutive failures), ws (window spec)
-- KEYS[2] w: hash  the window's counts (time buckets, or n/f/s of a count window)
-- KEYS[3] r: string  a count window's ring of outcomes, one byte per call
-- KEYS[4] hp: zset  trial permit id -> lease end (us)
-- KEYS[5] in: zset  instance id -> when it last reported a failure (us), for the
--                   min_instances guard
local S, W, R, HP, IN = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
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
  redis.call('DEL', W, R, HP, IN)
  keep(b, idle_ms)
  local remaining = 0
  if to == OPEN then
    remaining = b.ou - now
  end
  redis.call('PUBLISH', CHANNEL, to .. ' ' .. int(b.ep) .. ' ' .. int(remaining) .. ' ' .. b.oc)
end

-- The reply to an outcome (cb_record, cb_flush): {state, epoch, open remaining us,
-- window shape changed (0/1)}.
local function outcome_reply(b, now, reshaped)
  local remaining = 0
  if b.st == OPEN then
    remaining = math.max(b.ou - now, 0)
  end
  return {b.st, b.ep, remaining, reshaped}
end

-- Windows. spec is "t<bucket width us>" (ten time buckets, fields <slot>b (bucket
-- number), <slot>c, <slot>f, <slot>s (calls, failures, slow calls), slot = bucket % 10)
-- or "c<size>" (fields n, f, s: calls ever, failures and slow calls among the last
-- size; the ring R holds one outcome code per position).
-- Outcome codes: 0 success, 1 failure, 2 slow success, 3 slow failure.

local function occurrences(text, pattern)
  local _, n = string.gsub(text, pattern, '')
  return n
end

-- Count outcomes: ok successes, fail failures, slow_ok slow successes, slow_fail slow
-- failures (one call's, or a batch flushed by a local-first instance). No totals: a
-- plain success can never trip the breaker.
local function count(spec, now, ok, fail, slow_ok, slow_fail)
  local total = ok + fail + slow_ok + slow_fail
  local failures, slow = fail + slow_fail, slow_ok + slow_fail
  if string.sub(spec, 1, 1) == 'c' then
    local size = tonumber(string.sub(spec, 2))
    local v = redis.call('HMGET', W, 'n', 'f', 's')
    local n, f, s = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0
    -- A batch's order is unknown: failures go last, so that they stay in the window
    -- when the batch overflows it.
    local codes = string.rep('0', ok) .. string.rep('2', slow_ok) .. string.rep('1', fail)
      .. string.rep('3', slow_fail)
    local k = total
    if k > size then
      codes = string.sub(codes, k - size + 1)
      k = size
    end
    local start = (n + total - k) % size
    local first = math.min(k, size - start)
    -- The outcomes these positions held leave the window (positions never written
    -- read as nothing).
    local old = redis.call('GETRANGE', R, start, start + first - 1)
    redis.call('SETRANGE', R, start, string.sub(codes, 1, first))
    if first < k then
      old = old .. redis.call('GETRANGE', R, 0, k - first - 1)
      redis.call('SETRANGE', R, 0, string.sub(codes, first + 1))
    end
    f = f - occurrences(old, '[13]') + occurrences(codes, '[13]')
    s = s - occurrences(old, '[23]') + occurrences(codes, '[23]')
    redis.call('HSET', W, 'n', int(n + total), 'f', f, 's', s)
    return
  end
  local current = math.floor(now / tonumber(string.sub(spec, 2)))
  local slot = tostring(current % 10)
  if tonumber(redis.call('HGET', W, slot .. 'b')) == current then
    redis.call('HINCRBY', W, slot .. 'c', total)
    if failures > 0 then
      redis.call('HINCRBY', W, slot .. 'f', failures)
    end
    if slow > 0 then
      redis.call('HINCRBY', W, slot .. 's', slow)
    end
  else
    redis.call('HSET', W, slot .. 'b', int(current), slot .. 'c', total, slot .. 'f', failures,
      slot .. 's', slow)
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

-- Outcomes in the closed state: count them, keep the consecutive-failure count, and
-- say whether the breaker must open. consecutive: the failures in a row at the end of
-- the outcomes (nil: as many as failed, when no success is among them).
-- Returns the state to move to (or nil) and whether the window was restarted.
local function record_closed(b, cfg, now, ok, fail, slow_ok, slow_fail, consecutive)
  local spec = cfg.window
  local reset = 0
  if b.ws ~= spec then
    -- Another window shape than the one counted so far (new settings): start over.
    redis.call('DEL', W, R)
    redis.call('HSET', S, 'ws', spec)
    if b.ws then
      reset = 1
    end
  end
  count(spec, now, ok, fail, slow_ok, slow_fail)
  redis.call('PEXPIRE', W, cfg.wttl)
  if string.sub(spec, 1, 1) == 'c' then
    redis.call('PEXPIRE', R, cfg.wttl)
  end
  local failures, slow = fail + slow_fail, slow_ok + slow_fail
  local to = nil
  if failures > 0 then
    local cf
    if consecutive == nil then
      cf = redis.call('HINCRBY', S, 'cf', failures)
    else
      cf = consecutive
      redis.call('HSET', S, 'cf', cf)
    end
    local limit = tonumber(cfg.consecutive)
    if limit ~= nil and cf >= limit then
      to = OPEN
    end
    if cfg.quorum then
      redis.call('ZADD', IN, int(now), cfg.inst)
      redis.call('PEXPIRE', IN, cfg.wttl)
    end
  elseif b.cf ~= 0 then
    redis.call('HSET', S, 'cf', 0)
  end
  if to == nil and (failures > 0 or slow > 0) then
    local calls, failed, slow_calls = totals(spec, now)
    local rate, slow_rate = tonumber(cfg.rate), tonumber(cfg.slow)
    if calls >= tonumber(cfg.min) and ((rate ~= nil and failed / calls >= rate)
        or (slow_rate ~= nil and slow_calls / calls >= slow_rate)) then
      to = OPEN
    end
  end
  if to == OPEN and cfg.quorum then
    -- One instance's bad network path must not open the fleet's breaker: wait until
    -- enough instances report failures (in the window's time, for a time window).
    local horizon = tonumber(cfg.qwin)
    if horizon ~= nil then
      redis.call('ZREMRANGEBYSCORE', IN, '-inf', '(' .. int(now - horizon))
    end
    if redis.call('ZCARD', IN) < tonumber(cfg.quorum) then
      to = nil
    end
  end
  return to, reset
end
