-- wrk script for benches/e2e.sh: one small MCP `tools/call` POST per request, over keep-alive.
--
-- The body is fixed, so wrk builds the request once and never calls back into Lua per request,
-- unless E2E_PACE_MS is set: then each connection waits a random 0..2*E2E_PACE_MS ms (mean
-- E2E_PACE_MS) before each request, so that N connections offer about N / (E2E_PACE_MS + latency)
-- requests per ms, arriving at random phases rather than in lock-step bursts.

wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call",'
  .. '"params":{"name":"search_deals","arguments":{"query":"acme"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["X-API-Key"] = os.getenv("E2E_API_KEY") or ""

local pace = tonumber(os.getenv("E2E_PACE_MS") or "")
if pace and pace > 0 then
  math.randomseed(os.time())
  function delay()
    return math.random(0, 2 * pace)
  end
end
