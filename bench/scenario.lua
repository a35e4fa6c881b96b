-- One wrk script for every scenario: SCENARIO picks the request, data.lua (written by run.py)
-- holds the users, their tokens and their task ids. Each request picks a random user.
local scenario = os.getenv("SCENARIO")
local data = dofile(os.getenv("BENCH_DATA"))
local users, tokens, tasks = data.users, data.tokens, data.tasks
local n = #users
local counter = 0

math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)

request = function()
  local i = math.random(n)
  local user = users[i]
  local headers = {["Authorization"] = "Bearer " .. tokens[i]}
  local base = "/api/" .. user .. "/tasks"
  if scenario == "list" then
    return wrk.format("GET", base, headers)
  end
  if scenario == "create" then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", base, headers, '{"title": "bench task", "description": "made by wrk"}')
  end
  local ids = tasks[i]
  local task = base .. "/" .. ids[math.random(#ids)]
  if scenario == "get" then
    return wrk.format("GET", task, headers)
  elseif scenario == "toggle" then
    return wrk.format("PATCH", task .. "/complete", headers)
  elseif scenario == "patch" then
    counter = counter + 1
    headers["Content-Type"] = "application/json"
    return wrk.format("PATCH", task, headers, '{"title": "renamed ' .. counter .. '"}')
  end
  error("unknown SCENARIO " .. tostring(scenario))
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "RESULT {\"requests\": %d, \"seconds\": %f, \"p50_us\": %d, \"p99_us\": %d, " ..
    "\"non2xx\": %d, \"socket_errors\": %d}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
