-- wrk script: each request carries the next token from a file (one per line), round-robin.
-- Usage: wrk ... -s tests/e2e/tokens.lua URL -- TOKENS_FILE [PATH]
local tokens = {}
local i = 0
local path = "/"
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  path = args[2] or "/"
  i = math.random(#tokens)
end
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", path, {["authorization"] = "Bearer " .. tokens[i]})
end
