-- Take tokens from a GCRA token bucket. KEYS: the bucket's hash
--   (t: theoretical arrival time, us; i, b: interval and burst, for status readers).
-- ARGV: interval (us per token), burst, cost, max wait (us; '' for no limit), [now us],
--       [extra: up to this many more tokens, taken only if free now (a lease)]
-- Reply: {0, extra tokens taken} granted; {1, wait us, tat after, tat before} granted
--        after a wait (reserved); {2, wait us} refused, nothing taken.
local now = now_us(ARGV[5])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local before = redis.call('HGET', KEYS[1], 't')
local tat = tonumber(before) or now
if tat < now then
  tat = now
end
local new = tat + interval * tonumber(ARGV[3])
local wait = new - interval * burst - now
if wait > 0 then
  local max_wait = tonumber(ARGV[4])
  if max_wait ~= nil and wait > max_wait then
    return {2, math.ceil(wait)}
  end
end
local extra = 0
if wait <= 0 and ARGV[6] ~= nil and ARGV[6] ~= '' then
  -- A lease: as many of the tokens asked for as are free now, whole tokens only.
  extra = math.max(0, math.min(tonumber(ARGV[6]), math.floor(-wait / interval)))
  new = new + interval * extra
end
local stored = exact(new)
redis.call('HSET', KEYS[1], 't', stored, 'i', ARGV[1], 'b', ARGV[2])
-- The bucket is full again at the new tat: then a missing key means the same thing.
redis.call('PEXPIRE', KEYS[1], math.ceil((new - now) / 1000) + 1)
if wait > 0 then
  return {1, math.ceil(wait), stored, before or ''}
end
return {0, extra}
