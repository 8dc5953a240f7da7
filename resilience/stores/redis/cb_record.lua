-- The outcome of a call. KEYS: s, w, r, hp, in.
-- ARGV: epoch, outcome (0 success, 1 failure, 2 slow success, 3 slow failure),
--       permit id ('' unless a trial), open for (us), settings (window=<spec>
--       min=<minimum calls> rate=<failure rate> slow=<slow call rate>
--       consecutive=<failures> trials=<half_open_calls> idle=<ttl ms>
--       wttl=<window ttl ms> quorum=<min instances> inst=<instance id>
--       qwin=<quorum horizon us>; "-" for none), [now us]
-- Reply: {state, epoch, open remaining us, window shape changed (0/1)}
local now = now_us(ARGV[6])
local b = load(now)
local function reply(reshaped)
  return outcome_reply(b, now, reshaped)
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
  local fail = failed and not slow and 1 or 0
  local slow_fail = failed and slow and 1 or 0
  local slow_ok = slow and not failed and 1 or 0
  local ok = (failed or slow) and 0 or 1
  to, reset = record_closed(b, cfg, now, ok, fail, slow_ok, slow_fail, nil)
  if to == nil then
    redis.call('PEXPIRE', S, idle)
  end
end
if to ~= nil then
  transition(b, to, now, open_us, idle)
end
return reply(reset)
