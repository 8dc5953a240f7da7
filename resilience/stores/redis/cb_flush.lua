-- A local-first instance's outcomes since its last flush. KEYS: s, w, r, hp, in.
-- ARGV: epoch, counts ("<ok> <failures> <slow ok> <slow failures>"), failures in a row
--       at the end of them ('-' when none of them succeeded), open for (us), settings
--       (as cb_record), [now us]
-- Reply: {state, epoch, open remaining us, window shape changed (0/1)}: the breaker as
--        it is now, whatever happened to the counts.
local now = now_us(ARGV[6])
local b = load(now)
local function reply(reshaped)
  return outcome_reply(b, now, reshaped)
end
local cfg = settings(ARGV[5])
if b.new then
  -- A new (or expired) breaker, closed: local-first instances never ask to be
  -- admitted, so the first report makes it, and counts.
  b.ep = now
  redis.call('HSET', S, 'st', CLOSED, 'ep', int(b.ep), 'oc', 0)
elseif b.ep ~= tonumber(ARGV[1]) or b.st ~= CLOSED then
  return reply(0)  -- counted in another epoch: not evidence any more
end
local ok, fail, slow_ok, slow_fail = string.match(ARGV[2], '(%d+) (%d+) (%d+) (%d+)')
ok, fail, slow_ok, slow_fail = tonumber(ok), tonumber(fail), tonumber(slow_ok), tonumber(slow_fail)
local to, reset = nil, 0
if ok + fail + slow_ok + slow_fail > 0 then
  to, reset = record_closed(b, cfg, now, ok, fail, slow_ok, slow_fail, tonumber(ARGV[3]))
end
if to ~= nil then
  transition(b, to, now, tonumber(ARGV[4]), cfg.idle)
else
  redis.call('PEXPIRE', S, cfg.idle)
end
return reply(reset)
