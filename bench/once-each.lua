-- wrk script: one request per line of a pre-signed file, each line sent once (every line
-- carries a unique jti; a second use is refused). Every thread takes its own slice of the file
-- (line k goes to thread k mod THREADS) and stops when the slice runs out; done() then reports
-- it, because wrk still divides by the full duration (the calling script fails such a run or
-- signs more next time).
--   wrk ... -s bench/once-each.lua URL -- FILE THREADS                 (bench/token-endpoint.sh)
--     POST, each line a form body (an RFC 7523 assertion)
--   wrk ... -s bench/once-each.lua URL -- FILE THREADS TOKEN_FILE      (bench/dpop.sh)
--     GET with `Authorization: DPoP <the token in TOKEN_FILE>` (the same on every request: the
--     bridge checks it once, then answers from its cache), each line a `DPoP` proof
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
  local format
  if args[3] then
    local tf = assert(io.open(args[3], "r"))
    local authorization = "DPoP " .. tf:read("*l")
    tf:close()
    format = function(line)
      return wrk.format("GET", nil, { ["Authorization"] = authorization, ["DPoP"] = line })
    end
  else
    local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
    format = function(line)
      return wrk.format("POST", nil, headers, line)
    end
  end
  local file = assert(io.open(args[1], "r"))
  local k = 0
  for line in file:lines() do
    if line ~= "" then
      if k % n == id then
        requests[#requests + 1] = format(line)
      end
      k = k + 1
    end
  end
  file:close()
end

function request()
  used = used + 1
  if used > #requests then
    -- out of fresh lines: stop this thread (the replay sent meanwhile is refused, a non-2xx)
    exhausted = true
    wrk.thread:stop()
    return requests[#requests]
  end
  return requests[used]
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    if thread:get("exhausted") then
      io.write("EXHAUSTED: a thread ran out of its lines\n")
    end
  end
  io.write(string.format("Used: %d\n", summary.requests))
end
