-- wrk script: a fixed request rate (open loop within the connections' reach), each request
-- carrying the next token from a file, round-robin. Requests are given send slots 1/RATE apart
-- (per wrk thread); a connection ready early waits for its slot, one ready late sends at once.
-- Usage: wrk -t1 -cN ... -s tests/e2e/paced.lua URL -- TOKENS_FILE RATE [PATH]
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } tef_timespec;
  int clock_gettime(int clk, tef_timespec *ts);
]]
local ts = ffi.new("tef_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local tokens = {}
local i = 0
local path = "/"
local interval = 1
local next_slot = nil
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  interval = 1000 / tonumber(args[2])
  path = args[3] or "/"
  i = math.random(#tokens)
end
delay = function()
  local t = now_ms()
  if next_slot == nil then next_slot = t end
  next_slot = next_slot + interval
  local d = next_slot - t
  if d < 0 then return 0 end
  return math.floor(d)
end
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", path, {["authorization"] = "Bearer " .. tokens[i]})
end
