#!/usr/bin/env bash
# How long Redis makes other clients wait while an exporter reads CLIENT LIST (issue 17).
#
# One redis-server with N real idle clients (from several load processes, 200 loopback sources,
# one name per source). A PING loop on a held connection (benches/latency_probe.py) records
# the longest wait while, in turn, in the same run:
#   1. one full CLIENT LIST every second (redis-cli): the stall the chunked walk avoids;
#   2. redis-clients-exporter polling every POLL seconds with CLIENT LIST at every poll (chunked
#      by client id on Redis 6.2+; the first listing on its connection included);
#   3. the Go redis_exporter scraped every POLL seconds, default mode;
#   4. the same with --export-client-list.
# Prints one Markdown row each: the longest CLIENT LIST inside Redis (its SLOWLOG, which
# times the command on the main thread: what every other client waits behind), PING p99 / max
# (a round trip: on a busy machine the scheduler's noise adds to it), Redis' CLIENT LIST calls and
# usec per call from INFO commandstats over the window, and for ours the commands per listing.
#
# Install step on a fresh Debian/Ubuntu machine:
#   sudo apt-get install -y redis-server redis-tools prometheus-redis-exporter python3 curl
# Run (the hard open-files limit must allow 20000):
#   bash benches/stall.sh              # 19,900 clients
#   bash benches/stall.sh 5000
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-19900}
PROCS=${PROCS:-4}       # load processes
WINDOW=${WINDOW:-30}    # seconds measured per row
POLL=${POLL:-1}         # poll / scrape interval

for tool in redis-server redis-cli prometheus-redis-exporter python3 curl cargo; do
    command -v "$tool" >/dev/null || { echo "missing $tool: see the install step at the top of $0" >&2; exit 1; }
done
# redis-server needs one descriptor per client: 19,900 clients need the 20,000 limit.
ulimit -n 20000
cargo build --release --locked --quiet
BIN=$PWD/target/release/redis-clients-exporter
# shellcheck source=benches/lib.sh
. benches/lib.sh
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
metric() { curl -s "$1" | awk -v m="$2" '!found && index($0, m) == 1 {print $NF; found = 1}'; }
# "calls usec" of CLIENT LIST so far (INFO commandstats; 0 0 before the first call).
client_list_stats() {
    redis-cli -p "$RP" INFO commandstats | tr -d '\r' \
        | awk -F'[:=,]' 'index($0, "cmdstat_client|list:") == 1 {print $3, $5; found = 1} END {if (!found) print 0, 0}'
}
# row LABEL EXTRA: waits for the probe started before, prints the row.
probe_start() {
    python3 benches/slowlog_max.py "$RP" reset
    python3 benches/latency_probe.py "$RP" 3600 > "$work/lat" & LP=$!; sleep 0.5; read -r calls0 usec0 < <(client_list_stats)
}
probe_row() {
    read -r calls1 usec1 < <(client_list_stats)
    kill -TERM "$LP" 2>/dev/null || true; wait "$LP" 2>/dev/null || true
    read -r _ p99 pmax samples < "$work/lat"
    read -r slow_us _ slow50 slow99 < <(python3 benches/slowlog_max.py "$RP")
    local calls=$((calls1 - calls0)) usec=$((usec1 - usec0))
    echo "| $1 | $N real | $(awk -v a="$slow50" -v b="$slow99" -v u="$slow_us" 'BEGIN {printf "%.2f / %.2f / %.2f", a/1000, b/1000, u/1000}') | $p99 / $pmax | $samples | $calls | $(awk -v u="$usec" -v c="$calls" 'BEGIN {if (c > 0) printf "%.0f", u/c; else print "-"}') | $2 |"
}

RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --protected-mode no --save "" --appendonly no \
    --maxclients $((N + 64)) --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$RP" CONFIG SET slowlog-log-slower-than 100 >/dev/null
redis-cli -p "$RP" CONFIG SET slowlog-max-len 100000 >/dev/null
per=$(( (N + PROCS - 1) / PROCS )); left=$N
for k in $(seq 0 $((PROCS - 1))); do
    n=$(( left < per ? left : per )); left=$((left - n))
    python3 benches/load_clients.py "$RP" "$n" --sources $((200 / PROCS)) --first-source $((k * 200 / PROCS)) \
        --name "app$k" > "$work/load$k.out" &
    pids+=($!)
done
for k in $(seq 0 $((PROCS - 1))); do
    for _ in $(seq 1200); do grep -q ready "$work/load$k.out" 2>/dev/null && break; sleep 0.1; done
    grep -q ready "$work/load$k.out" || { echo "load process $k did not get ready" >&2; exit 1; }
done
echo "$(redis-cli -p "$RP" INFO clients | tr -d '\r' | grep connected_clients), $(redis-server --version | awk '{print $3}'), load average: $(uptime | sed 's/.*load average: //')"
echo
echo "| what | clients | CLIENT LIST in Redis ms, median / p99 / max (SLOWLOG) | PING p99 / max ms | PINGs | CLIENT LIST calls | Redis usec per call | notes |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"

# 1. One full CLIENT LIST a second.
probe_start
for _ in $(seq 10); do redis-cli -p "$RP" CLIENT LIST > /dev/null; sleep 1; done
probe_row "one full CLIENT LIST a second (redis-cli)" "reference"

# 2. Ours, polling every POLL s, CLIENT LIST at every poll, from its first poll on.
EP=$(free_port)
cat > "$work/ours.toml" <<EOF
listen = "127.0.0.1:$EP"
poll_interval_seconds = $POLL
[[targets]]
address = "redis://127.0.0.1:$RP"
alias = "bench"
EOF
probe_start
RUST_LOG=warn "$BIN" --config "$work/ours.toml" & OPID=$!; pids+=("$OPID")
sleep "$WINDOW"
m="http://127.0.0.1:$EP/metrics"
cmds=$(metric "$m" 'redis_clients_exporter_client_list_commands{')
polls=$(metric "$m" 'redis_clients_exporter_polls_total{')
seen=$(metric "$m" 'redis_client_snapshot_connections{')
fulls=$(curl -s "$m" | awk '/^redis_clients_exporter_client_list_full_listings_total/ && $NF > 0 {printf "%s%s", sep, $0; sep="; "}')
sweeps=$(curl -s "$m" | awk '/^redis_clients_exporter_client_list_sweeps_total/ && $NF > 0 {printf "%s%s", sep, $0; sep="; "}')
probe_row "redis-clients-exporter, every ${POLL}s" "$polls polls, $cmds commands per listing, $seen connections seen; full listings: ${fulls:-none}; sweeps: ${sweeps:-none}"
kill "$OPID"; wait "$OPID" 2>/dev/null || true

# 3, 4. The Go exporter, scraped every POLL s.
for mode in default export-client-list; do
    GP=$(free_port)
    extra=(); [ "$mode" = export-client-list ] && extra=(--export-client-list)
    prometheus-redis-exporter --redis.addr "redis://127.0.0.1:$RP" --web.listen-address "127.0.0.1:$GP" \
        --include-system-metrics=false "${extra[@]}" 2>"$work/go.log" & GPID=$!; pids+=("$GPID")
    wait_http "http://127.0.0.1:$GP/metrics"
    probe_start
    end=$((SECONDS + WINDOW)); scrapes=0
    while [ "$SECONDS" -lt "$end" ]; do
        curl -s -o /dev/null "http://127.0.0.1:$GP/metrics"; scrapes=$((scrapes + 1)); sleep "$POLL"
    done
    probe_row "redis_exporter $mode, every ${POLL}s" "$scrapes scrapes"
    kill "$GPID"; wait "$GPID" 2>/dev/null || true
done
echo
echo "load average at the end: $(uptime | sed 's/.*load average: //')"
