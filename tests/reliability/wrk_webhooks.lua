-- wrk script for the overload scenario: WhatsApp-style webhooks, each connection waiting
-- DELAY_MS between requests (many connections at a fixed pace approximate open-loop senders),
-- and a count of answers by status printed at the end as one JSON line.
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
local threads = {}
statuses = {}  -- global: read from each thread by done()
local n = 0

setup = function(thread)
  table.insert(threads, thread)
end

request = function()
  n = n + 1
  local body = '{"entry":[{"changes":[{"value":{"messages":[{"from":"49' .. (n % 5000) .. '"}]}}]}]}'
  return wrk.format("POST", "/webhook/jobs", {["Content-Type"] = "application/json"}, body)
end

delay = function()
  return delay_ms
end

response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(totals) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_s": %.3f, "statuses": {%s}, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_ms": %.1f, "p99_ms": %.1f}\n',
    summary.requests, summary.duration / 1e6, table.concat(parts, ", "), summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
