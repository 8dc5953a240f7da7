-- A shared bulkhead as it is now (reads only). KEYS: holders, instances.
-- ARGV: instance horizon (us), [now us]
-- Reply: {slots held, instances alive, earliest lease end - now (us), -1 if none}
local now = now_us(ARGV[2])
local held = redis.call('ZCOUNT', KEYS[1], '(' .. int(now), '+inf')
local alive = redis.call('ZCOUNT', KEYS[2], int(now - tonumber(ARGV[1])), '+inf')
local first = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local wait = -1
if first[2] then
  wait = tonumber(first[2]) - now
end
return {held, alive, int(wait)}
