-- Admit a call? KEYS: s, w, r, hp, in.
-- ARGV: permit id, settings (trials=<half_open_calls> lease=<trial lease, us>
--       idle=<idle ttl, ms>), [now us]
-- Reply: {state, epoch, verdict (0 rejected, 1 admitted, 2 admitted as a trial),
--         wait us (-1: until changed by hand), opens}
local b = load(0)
if b.st == CLOSED and not b.new or b.st == DISABLED then
  return {b.st, b.ep, 1, 0, b.oc}  -- the common case: no clock, no settings, no write
end
local cfg = settings(ARGV[2])
if b.new then
  b.ep = now_us(ARGV[3])  -- a new (or expired) breaker: its epochs start at "now"
  redis.call('HSET', S, 'st', CLOSED, 'ep', int(b.ep), 'oc', 0)
  redis.call('PEXPIRE', S, cfg.idle)
  return {b.st, b.ep, 1, 0, b.oc}
end
if b.st == FORCED_OPEN then
  return {b.st, b.ep, 0, -1, b.oc}
end
local now = now_us(ARGV[3])
if b.st == OPEN then
  if now < b.ou then
    return {b.st, b.ep, 0, b.ou - now, b.oc}
  end
  -- The first caller after the open period moves everyone to half-open.
  transition(b, HALF_OPEN, now, 0, cfg.idle)
end
-- Half-open: trial permits are leases, so a holder that died frees its slot in time.
redis.call('ZREMRANGEBYSCORE', HP, '-inf', int(now))
if redis.call('ZCARD', HP) + b.ok < tonumber(cfg.trials) then
  local lease = tonumber(cfg.lease)
  redis.call('ZADD', HP, int(now + lease), ARGV[1])
  redis.call('PEXPIRE', HP, math.ceil(lease / 500) + 1)
  return {b.st, b.ep, 2, 0, b.oc}
end
local first = redis.call('ZRANGE', HP, 0, 0, 'WITHSCORES')
local wait = 0
if first[2] then
  wait = math.max(tonumber(first[2]) - now, 0)
end
return {b.st, b.ep, 0, wait, b.oc}
