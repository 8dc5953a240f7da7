-- A new shape for the bucket, keeping the tokens free now (capped by the new burst).
-- KEYS: the bucket's hash. ARGV: old interval, old burst, new interval, new burst, [now us]
local now = now_us(ARGV[5])
local tat = tonumber(redis.call('HGET', KEYS[1], 't'))
if tat == nil or tat <= now then
  return 0  -- full, under any shape
end
local old_i, old_b = tonumber(ARGV[1]), tonumber(ARGV[2])
local new_i, new_b = tonumber(ARGV[3]), tonumber(ARGV[4])
local free = math.min(old_b - (tat - now) / old_i, new_b)
local new = now + (new_b - free) * new_i
redis.call('HSET', KEYS[1], 't', exact(new), 'i', ARGV[3], 'b', ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil((new - now) / 1000) + 1)
return 1
