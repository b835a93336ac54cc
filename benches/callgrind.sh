#!/usr/bin/env bash
# Instructions per request, counted by callgrind: the bare Pingora pass-through and mcpwarden,
# each in front of examples/fast_upstream.rs, for the same small `tools/call` POSTs as
# benches/e2e.sh. User-space instructions are deterministic, so unlike req/s on these shared
# machines a change of 1% shows; use it to compare versions of the request path. (Kernel time
# is not counted, and valgrind hides some CPU features: SHA-256 runs without SHA-NI here, so
# `authenticate` looks ~3k instructions dearer than it is.)
#
# Usage: benches/callgrind.sh      (needs valgrind and h2load: apt-get install valgrind
#                                    nghttp2-client; builds release unless CG_SKIP_BUILD=1)
# Knobs: CG_REQUESTS=2000 measured requests (after 400 of warm-up); CG_KEEP=1 keeps the
#        callgrind files (for callgrind_annotate) in the printed work directory.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
N=${CG_REQUESTS:-2000}
for tool in valgrind callgrind_control h2load curl; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool is missing" >&2; exit 1; }
done
[ "${CG_SKIP_BUILD:-0}" = 1 ] ||
    cargo build --release --bin mcpwarden --example fast_upstream --example bare_proxy
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpwarden-cg.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "${CG_KEEP:-0}" = 1 ] && echo "callgrind files kept in $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port) BARE=$(port) MW=$(port) ADMIN=$(port)
BODY="$WORK/body.json"
printf '%s' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_deals","arguments":{"query":"acme"}}}' >"$BODY"
KEY=$(target/release/mcpwarden keygen --workspace bench --id bench --scopes crm:read 2>/dev/null | head -1)
SHA=$(printf '%s' "$KEY" | target/release/mcpwarden hash-key 2>/dev/null | grep -o '[0-9a-f]\{64\}')
# shellcheck source=benches/e2e/policy.sh
. "$ROOT/benches/e2e/policy.sh"
bench_policy "$MW" "$ADMIN" "$UP" "$SHA" >"$WORK/policy.yaml"

target/release/examples/fast_upstream "127.0.0.1:$UP" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

# measure NAME PORT CMD...: runs CMD under callgrind, prints its instructions per request.
measure() {
    local name=$1 port=$2
    shift 2
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.%p" "$@" \
        >"$WORK/$name.log" 2>&1 &
    local vp=$!
    PIDS+=("$vp")
    local load=(h2load --h1 -c4 -m1 -d "$BODY" -H "x-api-key:$KEY"
        -H content-type:application/json -H "accept:application/json,text/event-stream")
    for _ in $(seq 120); do
        curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/mcp" --data-binary @"$BODY" \
            -H "x-api-key: $KEY" -H 'content-type: application/json' \
            -H 'accept: application/json, text/event-stream' && break
        sleep 0.5
    done
    "${load[@]}" -n 400 "http://127.0.0.1:$port/mcp" >/dev/null
    callgrind_control -z "$vp" >/dev/null 2>&1
    "${load[@]}" -n "$N" "http://127.0.0.1:$port/mcp" | grep -q "$N succeeded" ||
        echo "callgrind.sh: not every request through $name succeeded" >&2
    callgrind_control -d "$vp" >/dev/null 2>&1
    sleep 1
    local total
    total=$(callgrind_annotate "$(ls "$WORK/$name".*.1)" 2>/dev/null |
        awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
    kill "$vp"
    echo $((total / N))
}

bare=$(measure bare "$BARE" target/release/examples/bare_proxy "127.0.0.1:$BARE" "127.0.0.1:$UP" 1)
gw=$(measure mcpwarden "$MW" target/release/mcpwarden run --policy "$WORK/policy.yaml")
echo "| target | instructions per request | ÷ bare |"
echo "|---|---:|---:|"
echo "| bare Pingora proxy | $bare | 1.00 |"
echo "| mcpwarden | $gw | $(python3 -c "print(f'{$gw/$bare:.2f}')") |"
