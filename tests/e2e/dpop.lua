-- wrk script: each request carries the next (token, DPoP proof) pair from a file, each pair
-- once, starting at line OFFSET (a proof is refused when replayed: never wrap around).
-- Usage: wrk ... -s tests/e2e/dpop.lua URL -- PAIRS_FILE PATH OFFSET
local pairs_ = {}
local i = 0
local path = "/"
init = function(args)
  for line in io.lines(args[1]) do
    local t, p = line:match("^(%S+) (%S+)$")
    pairs_[#pairs_ + 1] = {t, p}
  end
  path = args[2] or "/"
  i = tonumber(args[3] or "0")
end
request = function()
  i = i + 1
  local tp = pairs_[(i - 1) % #pairs_ + 1]
  return wrk.format("GET", path, {["authorization"] = "DPoP " .. tp[1], ["dpop"] = tp[2]})
end
