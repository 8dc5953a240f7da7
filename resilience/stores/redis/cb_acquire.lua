-- Admit a call? KEYS: s, w, r, hp.
-- ARGV: permit id, half_open_calls, trial lease (us), channel, idle ttl (ms), [now us]
-- Reply: {state, epoch, verdict (0 rejected, 1 admitted, 2 admitted as a trial),
--         wait us (-1: until changed by hand), opens}
local now = now_us(ARGV[6])
local b = load(now)
if b.new then
  redis.call('HSET', S, 'st', CLOSED, 'ep', int(b.ep), 'oc', 0)
  redis.call('PEXPIRE', S, ARGV[5])
end
if b.st == CLOSED or b.st == DISABLED then
  return {b.st, b.ep, 1, 0, b.oc}
end
if b.st == FORCED_OPEN then
  return {b.st, b.ep, 0, -1, b.oc}
end
if b.st == OPEN then
  if now < b.ou then
    return {b.st, b.ep, 0, b.ou - now, b.oc}
  end
  -- The first caller after the open period moves everyone to half-open.
  transition(b, HALF_OPEN, now, 0, ARGV[4], ARGV[5])
end
-- Half-open: trial permits are leases, so a holder that died frees its slot in time.
redis.call('ZREMRANGEBYSCORE', HP, '-inf', int(now))
if redis.call('ZCARD', HP) + b.ok < tonumber(ARGV[2]) then
  local lease = tonumber(ARGV[3])
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
