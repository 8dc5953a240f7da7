-- A shared bulkhead: slots are leases, one per holder id.
-- KEYS[1]: zset  holder id -> lease end (us)
-- KEYS[2]: zset  instance id -> last heartbeat (us)
-- ARGV: limit, lease (us), instance id, instance horizon (us), [now us],
--       ids to release, ids to renew, ids wanting a slot (oldest first): each a
--       space-separated list, possibly empty
-- Reply: {instances alive, slots held now, ids granted (the first n wanting),
--         ids whose lease had already ended (lost), ...}
local now = now_us(ARGV[5])
local H, I = KEYS[1], KEYS[2]
local limit, lease, horizon = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
-- A holder that died (or stalled past its lease) frees its slot here.
redis.call('ZREMRANGEBYSCORE', H, '-inf', int(now))
for id in string.gmatch(ARGV[6], '%S+') do
  redis.call('ZREM', H, id)
end
local reply = {0, 0, 0}
local until_ = int(now + lease)
for id in string.gmatch(ARGV[7], '%S+') do
  if redis.call('ZADD', H, 'XX', 'CH', until_, id) == 0 and not redis.call('ZSCORE', H, id) then
    reply[#reply + 1] = id  -- lost: the slot may already be someone else's
  end
end
local held = redis.call('ZCARD', H)
local granted = 0
for id in string.gmatch(ARGV[8], '%S+') do
  if held >= limit then
    break
  end
  if redis.call('ZADD', H, 'NX', until_, id) == 1 then
    held = held + 1
  end
  granted = granted + 1  -- already held (a reply lost on the way): granted all the same
end
if held > 0 then
  redis.call('PEXPIRE', H, math.ceil(lease * 2 / 1000))
end
redis.call('ZADD', I, int(now), ARGV[3])
redis.call('ZREMRANGEBYSCORE', I, '-inf', '(' .. int(now - horizon))
redis.call('PEXPIRE', I, math.ceil(horizon * 2 / 1000))
reply[1], reply[2], reply[3] = redis.call('ZCARD', I), held, granted
return reply
