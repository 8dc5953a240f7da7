-- The outcome of a call. KEYS: s, w, r, hp.
-- ARGV: epoch, outcome (0 success, 1 failure, 2 slow success, 3 slow failure),
--       permit id ('' unless a trial), open for (us), settings (window=<spec>
--       min=<minimum calls> rate=<failure rate> slow=<slow call rate>
--       consecutive=<failures> trials=<half_open_calls> idle=<ttl ms>
--       wttl=<window ttl ms>; "-" for none), [now us]
-- Reply: {state, epoch, open remaining us, window shape changed (0/1)}
local now = now_us(ARGV[6])
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
local code = tonumber(ARGV[2])
local failed, slow = code % 2 == 1, code >= 2
local open_us, cfg = tonumber(ARGV[4]), settings(ARGV[5])
local idle = cfg.idle
local to = nil
local reset = 0
if b.st == HALF_OPEN then
  if ARGV[3] == '' or redis.call('ZREM', HP, ARGV[3]) == 0 then
    return reply(0)  -- not a trial, or its lease ended: it no longer counts
  end
  if failed then
    to = OPEN
  else
    local need = tonumber(cfg.trials)
    local ok = redis.call('HINCRBY', S, 'ok', 1)
    local sl = b.sl
    if slow then
      sl = redis.call('HINCRBY', S, 'sl', 1)
    end
    if ok >= need then
      local slow_rate = tonumber(cfg.slow)
      if slow_rate ~= nil and sl / need >= slow_rate then
        to = OPEN
      else
        to = CLOSED
      end
    end
  end
elseif b.st == CLOSED then
  local spec = cfg.window
  if b.ws ~= spec then
    -- Another window shape than the one counted so far (new settings): start over.
    redis.call('DEL', W, R)
    redis.call('HSET', S, 'ws', spec)
    if b.ws then
      reset = 1
    end
  end
  count(spec, now, code)
  redis.call('PEXPIRE', W, cfg.wttl)
  if string.sub(spec, 1, 1) == 'c' then
    redis.call('PEXPIRE', R, cfg.wttl)
  end
  if failed then
    local cf = redis.call('HINCRBY', S, 'cf', 1)
    local limit = tonumber(cfg.consecutive)
    if limit ~= nil and cf >= limit then
      to = OPEN
    end
  elseif b.cf ~= 0 then
    redis.call('HSET', S, 'cf', 0)
  end
  if to == nil and (failed or slow) then
    local calls, failures, slow_calls = totals(spec, now)
    local rate, slow_rate = tonumber(cfg.rate), tonumber(cfg.slow)
    if calls >= tonumber(cfg.min) and ((rate ~= nil and failures / calls >= rate)
        or (slow_rate ~= nil and slow_calls / calls >= slow_rate)) then
      to = OPEN
    end
  end
  if to == nil then
    redis.call('PEXPIRE', S, idle)
  end
end
if to ~= nil then
  transition(b, to, now, open_us, idle)
end
return reply(reset)
