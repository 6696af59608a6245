-- wrk script of bench/hot-path.sh: GET with `Authorization: Bearer <token>`, the tokens of a
-- file taken round robin (one per line). Every thread takes its own slice (line k goes to
-- thread k mod THREADS) so no two threads send the same token at the same time.
--   wrk ... -s bench/bearer-round-robin.lua URL -- TOKENS_FILE THREADS
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local requests = {}
local i = 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  local n = tonumber(args[2])
  local k = 0
  for line in file:lines() do
    if line ~= "" then
      if k % n == id then
        requests[#requests + 1] = wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. line })
      end
      k = k + 1
    end
  end
  file:close()
end

function request()
  i = i % #requests + 1
  return requests[i]
end
