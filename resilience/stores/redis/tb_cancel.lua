-- Give back a reservation that nobody will use, if nothing was taken after it.
-- KEYS: the bucket's hash. ARGV: tat after it, tat before it ('' if none), [now us]
-- Reply: 1 given back, 0 not (later takes stand on it; their bound holds either way).
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then
  return 0
end
local now = now_us(ARGV[3])
local before = tonumber(ARGV[2])
if before == nil or before <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 't', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], math.ceil((before - now) / 1000) + 1)
end
return 1
