-- wrk script of bench/soak.sh: one replica's share of the soak. Requests alternate between
-- GET /api/me with a bearer token (round robin over TOKENS_FILE, one a line) and GET /auth/session
-- with a session cookie (round robin over COOKIES_FILE, one Cookie header value a line, plus the
-- x-login-bridge header the bridge requires there). Answers are counted by status class; the
-- thread stops after SHARE answers and creates DONE_MARKER: wrk's main thread sleeps out the whole
-- -d duration whatever its threads do, so soak.sh sends it SIGINT then (wrk ends and reports).
-- When HALF_MARKER is not "-", that file is created once SHARE/2 answers are in (soak.sh kills
-- the replica then). The rate is answers / (last answer - first request), from the Lua clock,
-- so the wait for SIGINT does not count. Every non-2xx answer is kept with its
-- wall-clock time in ms (the first MAX_EVENTS of them), so soak.sh can tell whether it came
-- inside or outside the restart window. Run with -t1 (one thread: one Lua state).
--   wrk -t1 ... -s bench/soak.lua URL -- TOKENS_FILE COOKIES_FILE SHARE HALF_MARKER DONE_MARKER
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Wall-clock milliseconds: gettimeofday through LuaJIT's ffi (wrk links LuaJIT); whole seconds
-- from os.time() otherwise (soak.sh prints which).
local now_ms
local ok_ffi, ffi = pcall(require, "ffi")
if ok_ffi and pcall(ffi.cdef, [[
  typedef struct { long tv_sec; long tv_usec; } soak_timeval;
  int gettimeofday(soak_timeval *tv, void *tz);
]]) then
  local tv = ffi.new("soak_timeval")
  clock = "ms"
  now_ms = function()
    ffi.C.gettimeofday(tv, nil)
    return tonumber(tv.tv_sec) * 1000 + math.floor(tonumber(tv.tv_usec) / 1000)
  end
else
  clock = "s"
  now_ms = function() return os.time() * 1000 end
end

local MAX_EVENTS = 20000
local api, sessions = {}, {}
local share, marker, done_marker
local sent, next_api, next_session = 0, 0, 0
-- Globals: read by done() through thread:get.
answers, c2xx, c3xx, c4xx, c5xx, cother = 0, 0, 0, 0, 0, 0
events = {}          -- "ms status" of non-2xx answers, at most MAX_EVENTS
events_dropped = 0
finished = false     -- the share was reached
first_ms, last_ms = 0, 0

local function lines(path)
  local out = {}
  local file = assert(io.open(path, "r"))
  for line in file:lines() do
    if line ~= "" then out[#out + 1] = line end
  end
  file:close()
  return out
end

function init(args)
  for _, token in ipairs(lines(args[1])) do
    api[#api + 1] = wrk.format("GET", "/api/me", { Authorization = "Bearer " .. token })
  end
  for _, cookie in ipairs(lines(args[2])) do
    sessions[#sessions + 1] = wrk.format("GET", "/auth/session",
      { Cookie = cookie, ["x-login-bridge"] = "1" })
  end
  assert(#api > 0 and #sessions > 0, "soak.lua: no tokens or no cookies")
  share = tonumber(args[3])
  marker = args[4] ~= "-" and args[4] or nil
  done_marker = args[5]
end

local function touch(path)
  local file = io.open(path, "w")
  if file then file:write(now_ms() .. "\n"); file:close() end
end

function request()
  if sent == 0 then first_ms = now_ms() end
  sent = sent + 1
  if sent % 2 == 1 then
    next_api = next_api % #api + 1
    return api[next_api]
  end
  next_session = next_session % #sessions + 1
  return sessions[next_session]
end

function response(status, headers, body)
  answers = answers + 1
  if status >= 200 and status < 300 then
    c2xx = c2xx + 1
  else
    if status >= 500 and status < 600 then c5xx = c5xx + 1
    elseif status >= 400 and status < 500 then c4xx = c4xx + 1
    elseif status >= 300 and status < 400 then c3xx = c3xx + 1
    else cother = cother + 1 end
    if #events < MAX_EVENTS then
      events[#events + 1] = now_ms() .. " " .. status
    else
      events_dropped = events_dropped + 1
    end
  end
  if marker and answers * 2 >= share then
    touch(marker)
    marker = nil
  end
  if answers >= share and not finished then
    finished = true
    last_ms = now_ms()
    wrk.thread:stop()
    touch(done_marker)
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("soak-clock %s\n", thread:get("clock")))
    io.write(string.format("soak-answers %d\n", thread:get("answers")))
    for _, class in ipairs({ "c2xx", "c3xx", "c4xx", "c5xx", "cother" }) do
      io.write(string.format("soak-%s %d\n", class:sub(2), thread:get(class)))
    end
    io.write(string.format("soak-finished %s\n", tostring(thread:get("finished"))))
    local first, last = thread:get("first_ms"), thread:get("last_ms")
    if last > first then
      io.write(string.format("soak-rate %.1f\n", thread:get("answers") * 1000 / (last - first)))
    end
    for _, event in ipairs(thread:get("events")) do
      io.write("soak-event " .. event .. "\n")
    end
    io.write(string.format("soak-events-dropped %d\n", thread:get("events_dropped")))
  end
  local e = summary.errors
  io.write(string.format("soak-socket-errors connect %d read %d write %d timeout %d\n",
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("soak-p99-ms %.2f\n", latency:percentile(99) / 1000))
  io.write(string.format("soak-seconds %.2f\n", summary.duration / 1e6))
end
