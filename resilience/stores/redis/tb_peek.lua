-- How far the bucket is from full. KEYS: the bucket's hash. ARGV: [now us]
-- Reply: {owed us (0: full), interval, burst} ('' for the last two when unknown)
local now = now_us(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 't', 'i', 'b')
local tat = tonumber(v[1])
if tat == nil or tat <= now then
  return {'0', v[2] or '', v[3] or ''}
end
return {exact(tat - now), v[2] or '', v[3] or ''}
