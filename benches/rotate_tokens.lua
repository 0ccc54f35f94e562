-- wrk script for benches/listener.sh: every request carries the next token of a file (one
-- per line), so the listener's cache of verified tokens never hits when the file holds more
-- tokens than the cache keeps. Usage: wrk -s benches/rotate_tokens.lua URL -- TOKENS_FILE
local tokens = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = line
  end
end

function request()
  i = i % #tokens + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[i]
  return wrk.format()
end
