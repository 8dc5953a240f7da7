-- A retry budget: one instance reports its calls and retries since its last report
-- and takes a new share of the retries the fleet may still make.
-- KEYS[1]: hash  ten time buckets: <slot>b (bucket number), <slot>c (calls),
--                <slot>r (retries), slot = bucket % 10; and a:<instance>, the share
--                each instance holds
-- KEYS[2]: zset  instance id -> when it last reported (us)
-- ARGV: calls, retries, instance id, bucket width (us), instance horizon (us), ratio,
--       floor (retries the window allows without calls), [now us]
-- Reply: {calls in the window, retries in the window, instances reporting,
--         this instance's new share (retries, a decimal string)}
-- Retries spent, plus shares held, never exceed ratio * calls + floor: an instance
-- spends its share (and the ratio of the calls it made since) before it reports again.
local now = now_us(ARGV[8])
local H, I = KEYS[1], KEYS[2]
local calls, retries = tonumber(ARGV[1]), tonumber(ARGV[2])
local me = ARGV[3]
local width, horizon = tonumber(ARGV[4]), tonumber(ARGV[5])
local current = math.floor(now / width)
if calls > 0 or retries > 0 then
  local slot = tostring(current % 10)
  if tonumber(redis.call('HGET', H, slot .. 'b')) == current then
    redis.call('HINCRBY', H, slot .. 'c', calls)
    redis.call('HINCRBY', H, slot .. 'r', retries)
  else
    redis.call('HSET', H, slot .. 'b', int(current), slot .. 'c', calls, slot .. 'r', retries)
  end
end
-- Instances that stopped reporting give their shares back.
local gone = redis.call('ZRANGEBYSCORE', I, '-inf', '(' .. int(now - horizon))
for _, id in ipairs(gone) do
  redis.call('HDEL', H, 'a:' .. id)
end
redis.call('ZREMRANGEBYSCORE', I, '-inf', '(' .. int(now - horizon))
redis.call('ZADD', I, int(now), me)
redis.call('PEXPIRE', I, math.ceil(horizon * 2 / 1000))
local flat = redis.call('HGETALL', H)
local h = {}
for i = 1, #flat, 2 do
  h[flat[i]] = flat[i + 1]
end
local total_calls, total_retries, held = 0, 0, 0
for i = 0, 9 do
  local b = tonumber(h[i .. 'b'])
  if b ~= nil and b > current - 10 and b <= current then
    total_calls = total_calls + (tonumber(h[i .. 'c']) or 0)
    total_retries = total_retries + (tonumber(h[i .. 'r']) or 0)
  end
end
for key, value in pairs(h) do
  if string.sub(key, 1, 2) == 'a:' and key ~= 'a:' .. me then
    held = held + tonumber(value)
  end
end
local instances = redis.call('ZCARD', I)
local headroom = tonumber(ARGV[6]) * total_calls + tonumber(ARGV[7]) - total_retries
-- A fair part of the headroom, as far as the others' shares leave it.
local share = math.max(0, math.min(headroom / instances, headroom - held))
redis.call('HSET', H, 'a:' .. me, exact(share))
redis.call('PEXPIRE', H, math.max(math.ceil(width * 20 / 1000), math.ceil(horizon * 2 / 1000)))
return {total_calls, total_retries, instances, exact(share)}
