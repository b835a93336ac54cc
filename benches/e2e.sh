#!/usr/bin/env bash
# End-to-end load bench: the same small MCP `tools/call` POSTs, over keep-alive, sent
#   1. direct to a fast upstream (examples/fast_upstream.rs),
#   2. through a bare Pingora pass-through (examples/bare_proxy.rs, 1 worker thread): the floor,
#   3. through the same pass-through doing what the contract asks of every forwarded request on
#      the wire, with no checks (`bare_proxy --contract`: upstream read timeout, credentials out,
#      X-Forwarded-* and X-Mcpwarden-* in, Host rewritten): the floor of any gateway that keeps
#      the contract, whatever it checks,
#   4. through `mcpwarden run` (server.threads: 1, a generated key and policy).
# For each: (a) peak throughput with wrk (closed loop, E2E_CONNS connections), p50/p99;
# (b) latency at half of the bare proxy's peak rate, offered at a fixed rate by h2load (HTTP/1.1,
#     --rps per client; latencies from its per-request log, in µs).
# Prints a Markdown table. Only 127.0.0.1 traffic; every process it starts is stopped on exit;
# every wait is bounded. A target that fails to start is reported in its row, not waited on.
#
# Usage: benches/e2e.sh            (from anywhere; builds release first)
# Knobs (environment):
#   E2E_DURATION=10     seconds per measured run        E2E_WARMUP=2   seconds of warm-up
#   E2E_CONNS=32        connections for the peak run    E2E_HALF_CLIENTS=16  for the half-load run
#   E2E_HALF_RATE=      req/s for (b); default half the bare proxy's peak
#   E2E_SERVER_CPUS=0   CPUs for upstream and proxies   E2E_LOAD_CPUS=1  CPUs for wrk
#   E2E_PIN=1           0: no taskset                   E2E_SKIP_BUILD=0  1: use existing build
#   E2E_KEEP=0          1: keep the work directory (logs, policy) even on success
#   MCPWARDEN_BIN=target/release/mcpwarden   the gateway binary (keygen, check, run)
#   E2E_BARE_READ_TIMEOUT=   seconds: give the bare proxy Pingora's upstream read timeout,
#                            as mcpwarden has (idle_timeout); unset: none, the plain floor
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${E2E_DURATION:-10}
WARMUP=${E2E_WARMUP:-2}
CONNS=${E2E_CONNS:-32}
HALF_CLIENTS=${E2E_HALF_CLIENTS:-16}
HALF_RATE=${E2E_HALF_RATE:-}
SERVER_CPUS=${E2E_SERVER_CPUS:-0}
LOAD_CPUS=${E2E_LOAD_CPUS:-1}
PIN=${E2E_PIN:-1}
KEEP=${E2E_KEEP:-0}
MCPWARDEN=${MCPWARDEN_BIN:-target/release/mcpwarden}
EXAMPLES=target/release/examples
LUA="$ROOT/benches/e2e/tools_call.lua"
# shellcheck source=benches/e2e/policy.sh
. "$ROOT/benches/e2e/policy.sh"
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_deals","arguments":{"query":"acme"}}}'

log() { printf '[e2e] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- processes and cleanup ------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpwarden-e2e.XXXXXX")
PIDS=()
FAILED=0

# Each server runs in its own process group (setsid), so stopping the group also stops any
# child it started.
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for _ in $(seq 30); do # up to 3 s for a graceful exit, then SIGKILL
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$KEEP" = 1 ] || [ "$FAILED" = 1 ]; then
        log "logs and policy kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs "$@" pinned to CPU set $1 (when pinning), in the background, as the leader of a new
# process group; its pid goes to PIDS and to the global LAST_PID (setsid and taskset exec the
# command, so the pid is the server's own).
spawn() {
    local cpus=$1 logfile=$2
    shift 2
    if [ "$PIN" = 1 ]; then
        setsid taskset -c "$cpus" "$@" >"$logfile" 2>&1 &
    else
        setsid "$@" >"$logfile" 2>&1 &
    fi
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# A loopback port nobody listens on (and that this run has not handed out yet).
USED_PORTS=" "
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 30000))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            USED_PORTS+="$p "
            echo "$p"
            return 0
        fi
    done
    die "no free loopback port found"
}

# HTTP status of one tools/call POST to $1 (000 when nothing answers).
post_status() {
    curl -s -o "$WORK/last_body" -w '%{http_code}' --max-time 2 -X POST \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H "X-API-Key: $API_KEY" --data "$BODY" "$1" 2>/dev/null || true
}

# wait_until SECONDS PID WHAT CMD...: polls CMD every 0.1 s until it succeeds (0), the process
# PID exits (1) or SECONDS pass (2). Sets WAIT_REASON on failure.
wait_until() {
    local seconds=$1 pid=$2 what=$3
    shift 3
    local deadline=$((SECONDS + seconds))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if "$@"; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            WAIT_REASON="$what exited before it was ready"
            return 1
        fi
        sleep 0.1
    done
    WAIT_REASON="$what not ready after ${seconds}s"
    return 2
}
answers_200() { [ "$(post_status "$1")" = 200 ]; }
readyz_200() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$1/readyz" 2>/dev/null)" = 200 ]
}
last_log_line() { tail -n 1 "$1" 2>/dev/null | cut -c1-160 | tr '|' '/'; }

# --- build and tools ------------------------------------------------------------------------

if [ "${E2E_SKIP_BUILD:-0}" != 1 ]; then
    log "building release (cargo build --release --bin mcpwarden --examples)"
    cargo build --release --bin mcpwarden --examples >&2
fi
[ -x "$EXAMPLES/fast_upstream" ] && [ -x "$EXAMPLES/bare_proxy" ] || die "examples not built"

need=()
for tool in wrk h2load curl taskset setsid; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ "${#need[@]}" -gt 0 ]; then
    pkgs=()
    for tool in "${need[@]}"; do
        case "$tool" in wrk) pkgs+=(wrk) ;; h2load) pkgs+=(nghttp2-client) ;; curl) pkgs+=(curl) ;; taskset | setsid) pkgs+=(util-linux) ;; esac
    done
    log "installing ${pkgs[*]} with apt-get"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2
    else
        sudo apt-get update -qq >&2 && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2
    fi
fi

# --- targets --------------------------------------------------------------------------------

UP_PORT=$(free_port)
BARE_PORT=$(free_port)
CONTRACT_PORT=$(free_port)
MW_PORT=$(free_port)
ADMIN_PORT=$(free_port)

TARGETS=(direct bare contract mcpwarden)
declare -A NAME=(
    [direct]="direct (upstream)"
    [bare]="bare Pingora proxy"
    [contract]="bare Pingora proxy + the contract's wire work"
    [mcpwarden]="mcpwarden"
)
BARE_READ_TIMEOUT=${E2E_BARE_READ_TIMEOUT:-}
case "$BARE_READ_TIMEOUT" in
    "") ;;
    *[!0-9]*) die "E2E_BARE_READ_TIMEOUT must be whole seconds" ;;
    *) NAME[bare]="bare Pingora proxy, read timeout" ;;
esac
declare -A URL=(
    [direct]="http://127.0.0.1:$UP_PORT/mcp"
    [bare]="http://127.0.0.1:$BARE_PORT/mcp"
    [contract]="http://127.0.0.1:$CONTRACT_PORT/mcp"
    [mcpwarden]="http://127.0.0.1:$MW_PORT/mcp"
)
declare -A DOWN=() # target -> why it is not measured

# The key: real when keygen works, else a well-formed stand-in of the same length, so that all
# targets receive the same bytes.
API_KEY=mcpw_00000000000000000000000000000000000000
SHA=""
if [ -x "$MCPWARDEN" ]; then
    KEYGEN=$(timeout 10 "$MCPWARDEN" keygen --workspace bench --id bench 2>"$WORK/keygen.err" || true)
    first=$(printf '%s\n' "$KEYGEN" | head -n 1)
    SHA=$(printf '%s\n' "$KEYGEN" | grep -m1 -oE 'sha256: *[0-9a-f]{64}' | grep -oE '[0-9a-f]{64}' || true)
    if [[ "$first" =~ ^mcpw_[0-9A-Za-z]{38}$ ]] && [ -n "$SHA" ]; then
        API_KEY=$first
    else
        DOWN[mcpwarden]="\`mcpwarden keygen\` printed no key and sha256 line"
    fi
else
    DOWN[mcpwarden]="$MCPWARDEN not built"
fi

log "upstream on :$UP_PORT, bare proxies on :$BARE_PORT and :$CONTRACT_PORT, mcpwarden on :$MW_PORT (admin :$ADMIN_PORT)"
log "servers pinned to CPU $SERVER_CPUS, wrk to CPU $LOAD_CPUS (E2E_PIN=$PIN)"

spawn "$SERVER_CPUS" "$WORK/upstream.log" "$EXAMPLES/fast_upstream" "127.0.0.1:$UP_PORT"
UP_PID=$LAST_PID
wait_until 10 "$UP_PID" "fast_upstream" answers_200 "${URL[direct]}" ||
    die "$WAIT_REASON: $(last_log_line "$WORK/upstream.log")"

spawn "$SERVER_CPUS" "$WORK/bare.log" "$EXAMPLES/bare_proxy" \
    "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP_PORT" 1 ${BARE_READ_TIMEOUT:+--read-timeout "$BARE_READ_TIMEOUT"}
if ! wait_until 10 "$LAST_PID" "bare_proxy" answers_200 "${URL[bare]}"; then
    DOWN[bare]="$WAIT_REASON: $(last_log_line "$WORK/bare.log")"
fi
spawn "$SERVER_CPUS" "$WORK/contract.log" "$EXAMPLES/bare_proxy" \
    "127.0.0.1:$CONTRACT_PORT" "127.0.0.1:$UP_PORT" 1 --contract
if ! wait_until 10 "$LAST_PID" "bare_proxy --contract" answers_200 "${URL[contract]}"; then
    DOWN[contract]="$WAIT_REASON: $(last_log_line "$WORK/contract.log")"
fi

if [ -z "${DOWN[mcpwarden]:-}" ]; then
    POLICY="$WORK/policy.yaml"
    bench_policy "$MW_PORT" "$ADMIN_PORT" "$UP_PORT" "$SHA" >"$POLICY"
    if ! timeout 10 "$MCPWARDEN" check --policy "$POLICY" >"$WORK/check.log" 2>&1; then
        DOWN[mcpwarden]="\`mcpwarden check\` refused the policy: $(last_log_line "$WORK/check.log")"
    else
        spawn "$SERVER_CPUS" "$WORK/mcpwarden.log" "$MCPWARDEN" run --policy "$POLICY"
        if ! wait_until 30 "$LAST_PID" "mcpwarden run" readyz_200 "127.0.0.1:$ADMIN_PORT"; then
            DOWN[mcpwarden]="$WAIT_REASON: $(last_log_line "$WORK/mcpwarden.log")"
        else
            status=$(post_status "${URL[mcpwarden]}")
            if [ "$status" != 200 ]; then
                DOWN[mcpwarden]="a tools/call through it got HTTP $status: $(head -c 160 "$WORK/last_body" | tr '|\n' '/ ')"
            fi
        fi
    fi
fi

for t in "${TARGETS[@]}"; do
    if [ -n "${DOWN[$t]:-}" ]; then
        FAILED=1
        log "${NAME[$t]}: not measured: ${DOWN[$t]}"
    fi
done

# --- measuring ------------------------------------------------------------------------------

# µs from a wrk duration such as 812.00us, 1.23ms, 2.00s or 1.00m.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 1 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : -1
        if (f < 0) { print "?"; exit } printf "%.0f", n * f }'
}

# run_wrk TARGET KIND CONNS SECONDS: runs wrk and sets R_RPS, R_P50, R_P99 (µs) and
# R_ERR (non-2xx responses plus socket errors) from its report.
run_wrk() {
    local target=$1 kind=$2 conns=$3 secs=$4
    local out="$WORK/wrk-$target-$kind.txt"
    local pin=()
    [ "$PIN" = 1 ] && pin=(taskset -c "$LOAD_CPUS")
    E2E_API_KEY=$API_KEY timeout $((secs + 20)) "${pin[@]}" \
        wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s --latency -s "$LUA" "${URL[$target]}" \
        >"$out" 2>&1 || true
    R_RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    R_P50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
    R_P99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
    R_ERR=$(awk '/Non-2xx or 3xx responses:/ { e += $NF }
                 /Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
                 END { print e + 0 }' "$out")
    if [ -z "$R_RPS" ]; then
        R_RPS="wrk failed" R_P50="?" R_P99="?"
        log "wrk against ${NAME[$target]} failed: $(last_log_line "$out")"
    fi
}

# run_h2load TARGET RPS_PER_CLIENT SECONDS: a fixed-rate run (each client keeps its own
# schedule; a request due while the previous one is in flight waits for the connection). Sets
# R_RPS, R_P50, R_P99 (µs, from the per-request log) and R_ERR.
printf '%s' "$BODY" >"$WORK/body.json"
run_h2load() {
    local target=$1 per=$2 secs=$3
    local out="$WORK/h2load-$target.txt" reqlog="$WORK/h2load-$target.log"
    local pin=()
    [ "$PIN" = 1 ] && pin=(taskset -c "$LOAD_CPUS")
    timeout $((secs + 20)) "${pin[@]}" h2load --h1 -c "$HALF_CLIENTS" --rps "$per" \
        -D "$secs" --warm-up-time 1 -d "$WORK/body.json" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H "X-API-Key: $API_KEY" --log-file "$reqlog" "${URL[$target]}" >"$out" 2>&1 || true
    R_RPS=$(awk '/^finished in/ { printf "%.0f", $4 }' "$out")
    read -r R_P50 R_P99 < <(awk '{ print $3 }' "$reqlog" 2>/dev/null | sort -n | awk '
        { v[NR] = $1 } END { if (NR == 0) print "? ?"; else print v[int((NR - 1) * 0.50) + 1], v[int((NR - 1) * 0.99) + 1] }')
    R_ERR=$(awk '/^requests:/ { gsub(/,/, ""); e += $12 + $14 }
                 /^status codes:/ { gsub(/,/, ""); e += $5 + $7 + $9 }
                 END { print e + 0 }' "$out")
    if [ -z "$R_RPS" ]; then
        R_RPS="h2load failed" R_P50="?" R_P99="?"
        log "h2load against ${NAME[$target]} failed: $(last_log_line "$out")"
    fi
}

LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOADAVG%% *}" 'BEGIN { exit !(l > 0.5) }'; then
    log "warning: load average $LOADAVG before measuring: other work shares these CPUs; expect noisy tails"
fi

declare -A PEAK_RPS PEAK_P50 PEAK_P99 PEAK_ERR HALF_RPS HALF_P50 HALF_P99 HALF_ERR

for t in "${TARGETS[@]}"; do
    [ -n "${DOWN[$t]:-}" ] && continue
    log "${NAME[$t]}: warm-up ${WARMUP}s, then peak ${DURATION}s (wrk -t1 -c$CONNS)"
    run_wrk "$t" warmup "$CONNS" "$WARMUP"
    run_wrk "$t" peak "$CONNS" "$DURATION"
    PEAK_RPS[$t]=$R_RPS PEAK_P50[$t]=$R_P50 PEAK_P99[$t]=$R_P99 PEAK_ERR[$t]=$R_ERR
    log "${NAME[$t]}: $R_RPS req/s, p50 $R_P50 µs, p99 $R_P99 µs, errors $R_ERR"
done

if [ -z "$HALF_RATE" ]; then
    base=${PEAK_RPS[bare]:-}
    [[ "$base" =~ ^[0-9]+$ ]] || base=${PEAK_RPS[direct]:-}
    [[ "$base" =~ ^[0-9]+$ ]] || base=0
    HALF_RATE=$((base / 2))
fi
if [ "$HALF_RATE" -gt 0 ]; then
    PER_CLIENT=$(( (HALF_RATE + HALF_CLIENTS / 2) / HALF_CLIENTS ))
    [ "$PER_CLIENT" -ge 1 ] || PER_CLIENT=1
    for t in "${TARGETS[@]}"; do
        [ -n "${DOWN[$t]:-}" ] && continue
        log "${NAME[$t]}: ${DURATION}s at $((PER_CLIENT * HALF_CLIENTS)) req/s (h2load, $HALF_CLIENTS clients × $PER_CLIENT req/s)"
        run_h2load "$t" "$PER_CLIENT" "$DURATION"
        HALF_RPS[$t]=$R_RPS HALF_P50[$t]=$R_P50 HALF_P99[$t]=$R_P99 HALF_ERR[$t]=$R_ERR
        log "${NAME[$t]}: $R_RPS req/s, p50 $R_P50 µs, p99 $R_P99 µs, errors $R_ERR"
    done
fi

# --- report ---------------------------------------------------------------------------------

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b > 0) printf "%.2f", a / b; else print "—" }'
}
added() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/) printf "%+d", a - b; else print "—" }'
}

echo
echo "mcpwarden e2e bench — $(date -u +%FT%TZ), $(nproc) CPUs, servers on CPU $SERVER_CPUS, wrk on CPU $LOAD_CPUS (pin=$PIN)"
echo "peak: wrk -t1 -c$CONNS -d${DURATION}s; half load: h2load --h1 -c$HALF_CLIENTS --rps ${PER_CLIENT:-0} -D$DURATION; latencies in µs; load average before: $LOADAVG"
echo
echo "| target | req/s | p50 | p99 | req/s ÷ bare | req/s ÷ contract floor | half-load req/s | half-load p50 | half-load p99 | added p99 over bare (half load) | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for t in "${TARGETS[@]}"; do
    if [ -n "${DOWN[$t]:-}" ]; then
        echo "| ${NAME[$t]} | not measured: ${DOWN[$t]} | | | | | | | | | |"
        continue
    fi
    echo "| ${NAME[$t]} | ${PEAK_RPS[$t]} | ${PEAK_P50[$t]} | ${PEAK_P99[$t]} |" \
        "$(ratio "${PEAK_RPS[$t]}" "${PEAK_RPS[bare]:-}") |" \
        "$(ratio "${PEAK_RPS[$t]}" "${PEAK_RPS[contract]:-}") |" \
        "${HALF_RPS[$t]:-—} | ${HALF_P50[$t]:-—} | ${HALF_P99[$t]:-—} |" \
        "$(added "${HALF_P99[$t]:-}" "${HALF_P99[bare]:-}") |" \
        "$((${PEAK_ERR[$t]:-0} + ${HALF_ERR[$t]:-0})) |"
done
