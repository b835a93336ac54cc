# The gateway's policy for the load benches (sourced by benches/e2e.sh and
# benches/callgrind.sh): one key, one tool rule, one worker thread, limits so high they
# never bite, so every request pays for them without being refused.
#
# bench_policy LISTEN_PORT ADMIN_PORT UPSTREAM_PORT KEY_SHA256  (prints the YAML)
bench_policy() {
    cat <<YAML
# Generated for the benches: limits so high they never bite, one key, one tool rule.
version: 1
server:
  listen: 127.0.0.1:$1
  admin_listen: 127.0.0.1:$2
  threads: 1
  shutdown_grace: 1s
upstream:
  url: http://127.0.0.1:$3
limits:
  requests_per_minute: 100000000
  concurrent_connections: 100000
tools:
  - match: search_deals
    requires: [crm:read]
workspaces:
  bench:
    scopes: [crm:read]
    keys:
      - id: bench
        sha256: $4
        created: $(date -u +%F)
YAML
}
