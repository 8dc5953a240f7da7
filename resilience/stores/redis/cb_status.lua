-- Read a breaker's state and window. KEYS: s, w, r, hp, in. ARGV: [now us]
-- Reply: {} when unknown, else {state, epoch, open until - now (us), opens, calls,
--         failures, slow calls, consecutive failures, trials running, trials succeeded,
--         window spec}
local now = now_us(ARGV[1])
local b = load(now)
if b.new then
  return {}
end
local calls, failures, slow = 0, 0, 0
if b.st == CLOSED and b.ws then
  calls, failures, slow = totals(b.ws, now)
end
local trials = 0
if b.st == HALF_OPEN then
  trials = redis.call('ZCOUNT', HP, '(' .. int(now), '+inf')
end
return {b.st, b.ep, b.ou - now, b.oc, calls, failures, slow, b.cf, trials, b.ok, b.ws or ''}
