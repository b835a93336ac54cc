-- wrk script for benches/e2e.sh: one small MCP `tools/call` POST per request, over keep-alive.
-- The key comes from E2E_API_KEY. The request is fixed, so wrk builds it once and never calls
-- back into Lua per request (no request/response functions: they would cost wrk CPU).

wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call",'
  .. '"params":{"name":"search_deals","arguments":{"query":"acme"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["X-API-Key"] = os.getenv("E2E_API_KEY") or ""

