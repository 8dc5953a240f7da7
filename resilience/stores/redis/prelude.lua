-- Shared by every script (prepended when the scripts are loaded).
-- Time is the server's (TIME, in microseconds) unless a test clock sends ARGV "now".
-- Numbers are written with string.format: Lua's tostring keeps only 14 digits.
local function now_us(arg)
  if arg ~= nil and arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function int(n)
  return string.format('%.0f', n)
end

local function exact(n)
  return string.format('%.17g', n)
end
