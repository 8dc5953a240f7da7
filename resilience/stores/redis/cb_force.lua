-- Manual control. KEYS: s, w, r, hp, in.
-- ARGV: action (open, close, reset, disable), idle ttl (ms), [now us]
-- Reply: {state, epoch, previous state}
local now = now_us(ARGV[3])
local b = load(now)
local before = b.st
local action = ARGV[1]
if action == 'open' then
  transition(b, FORCED_OPEN, now, 0, ARGV[2])
elseif action == 'disable' then
  transition(b, DISABLED, now, 0, ARGV[2])
elseif action == 'reset' or (action == 'close' and b.st ~= CLOSED) then
  transition(b, CLOSED, now, 0, ARGV[2])
elseif action ~= 'close' then
  return redis.error_reply('unknown breaker action ' .. action)
end
return {b.st, b.ep, before}
