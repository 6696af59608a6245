-- wrk script of bench/token-endpoint.sh: POSTs one pre-generated form body per request, each
-- used once (their assertions carry a unique jti). Every thread takes its own slice of the
-- file (line k goes to thread k mod THREADS) and stops when the slice runs out; done() then
-- reports it, because wrk still divides by the full duration.
--   wrk ... -s bench/token-bodies.lua URL -- BODIES_FILE THREADS
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local requests = {}
local used = 0
exhausted = false

function init(args)
  local file = assert(io.open(args[1], "r"))
  local n = tonumber(args[2])
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  local k = 0
  for line in file:lines() do
    if line ~= "" then
      if k % n == id then
        requests[#requests + 1] = wrk.format("POST", nil, headers, line)
      end
      k = k + 1
    end
  end
  file:close()
end

function request()
  used = used + 1
  if used > #requests then
    -- out of fresh assertions: stop this thread (the replay sent meanwhile is refused)
    exhausted = true
    wrk.thread:stop()
    return requests[#requests]
  end
  return requests[used]
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    if thread:get("exhausted") then
      io.write("EXHAUSTED: a thread ran out of assertions\n")
    end
  end
  io.write(string.format("Bodies-used: %d\n", summary.requests))
end
