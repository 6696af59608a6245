-- wrk script of bench/dpop.sh: GET with `Authorization: DPoP <token>` (one token, the same on
-- every request: the bridge checks it once and then answers from its cache) and a `DPoP` proof
-- from a pre-signed file, each proof sent once (they carry a unique jti; a second use is a 401).
-- Every thread takes its own slice of the file (line k goes to thread k mod THREADS) and stops
-- when the slice runs out; done() then reports it, because wrk still divides by the full
-- duration (bench/dpop.sh fails such a run and signs more next time).
--   wrk ... -s bench/dpop-proofs.lua URL -- PROOFS_FILE THREADS TOKEN_FILE
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
  local n = tonumber(args[2])
  local tf = assert(io.open(args[3], "r"))
  local authorization = "DPoP " .. tf:read("*l")
  tf:close()
  local file = assert(io.open(args[1], "r"))
  local k = 0
  for line in file:lines() do
    if line ~= "" then
      if k % n == id then
        requests[#requests + 1] = wrk.format("GET", nil, { ["Authorization"] = authorization, ["DPoP"] = line })
      end
      k = k + 1
    end
  end
  file:close()
end

function request()
  used = used + 1
  if used > #requests then
    -- out of fresh proofs: stop this thread (the replay sent meanwhile is refused, a non-2xx)
    exhausted = true
    wrk.thread:stop()
    return requests[#requests]
  end
  return requests[used]
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    if thread:get("exhausted") then
      io.write("EXHAUSTED: a thread ran out of proofs\n")
    end
  end
  io.write(string.format("Proofs-used: %d\n", summary.requests))
end
