-- The outcome of a call. KEYS: s, w, r, hp.
-- ARGV: epoch, failed (0/1), slow (0/1), permit id ('' unless a trial), window spec,
--       minimum calls, failure rate ('' none), slow call rate ('' none),
--       consecutive failures ('' none), open for (us), half_open_calls, channel,
--       idle ttl (ms), window ttl (ms), [now us]
-- Reply: {state, epoch, open remaining us, window shape changed (0/1)}
local now = now_us(ARGV[15])
local b = load(now)
local function reply(reshaped)
  local remaining = 0
  if b.st == OPEN then
    remaining = math.max(b.ou - now, 0)
  end
  return {b.st, b.ep, remaining, reshaped}
end
if b.new or b.ep ~= tonumber(ARGV[1]) then
  return reply(0)  -- admitted in another epoch: not evidence any more
end
local failed, slow = ARGV[2] == '1', ARGV[3] == '1'
local open_us, channel, idle = tonumber(ARGV[10]), ARGV[12], ARGV[13]
local to = nil
local reset = 0
if b.st == HALF_OPEN then
  if ARGV[4] == '' or redis.call('ZREM', HP, ARGV[4]) == 0 then
    return reply(0)  -- not a trial, or its lease ended: it no longer counts
  end
  if failed then
    to = OPEN
  else
    local need = tonumber(ARGV[11])
    local ok = redis.call('HINCRBY', S, 'ok', 1)
    local sl = b.sl
    if slow then
      sl = redis.call('HINCRBY', S, 'sl', 1)
    end
    if ok >= need then
      local slow_rate = tonumber(ARGV[8])
      if slow_rate ~= nil and sl / need >= slow_rate then
        to = OPEN
      else
        to = CLOSED
      end
    end
  end
elseif b.st == CLOSED then
  local spec = ARGV[5]
  if b.ws ~= spec then
    -- Another window shape than the one counted so far (new settings): start over.
    redis.call('DEL', W, R)
    redis.call('HSET', S, 'ws', spec)
    if b.ws then
      reset = 1
    end
  end
  local code = (failed and 1 or 0) + (slow and 2 or 0)
  local calls, failures, slow_calls = window(spec, now, code)
  redis.call('PEXPIRE', W, ARGV[14])
  if string.sub(spec, 1, 1) == 'c' then
    redis.call('PEXPIRE', R, ARGV[14])
  end
  if failed then
    local cf = redis.call('HINCRBY', S, 'cf', 1)
    local limit = tonumber(ARGV[9])
    if limit ~= nil and cf >= limit then
      to = OPEN
    end
  elseif b.cf ~= 0 then
    redis.call('HSET', S, 'cf', 0)
  end
  if to == nil and (failed or slow) and calls >= tonumber(ARGV[6]) then
    local rate, slow_rate = tonumber(ARGV[7]), tonumber(ARGV[8])
    if (rate ~= nil and failures / calls >= rate)
        or (slow_rate ~= nil and slow_calls / calls >= slow_rate) then
      to = OPEN
    end
  end
  if to == nil then
    redis.call('PEXPIRE', S, idle)
  end
end
if to ~= nil then
  transition(b, to, now, open_us, channel, idle)
end
return reply(reset)
