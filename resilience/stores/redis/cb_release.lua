-- A trial ended with no outcome (cancelled, ignored): free its permit.
-- KEYS: s, w, r, hp, in. ARGV: epoch, permit id. Reply: {state, epoch}
local v = redis.call('HMGET', S, 'st', 'ep')
if v[2] and tonumber(v[2]) == tonumber(ARGV[1]) and tonumber(v[1]) == HALF_OPEN then
  redis.call('ZREM', HP, ARGV[2])
end
return {tonumber(v[1]) or CLOSED, tonumber(v[2]) or 0}
