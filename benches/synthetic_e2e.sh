#!/usr/bin/env bash
# End to end above the open-files limit: the release exporter polls benches/fake_redis.py, which
# answers CLIENT LIST with a synthetic reply of N clients (built once, so the server's own cost is
# only the socket write). Prints one Markdown row per client count for docs/performance.md.
#
# Install step on a fresh Debian/Ubuntu machine: python3 and curl (and Rust to build).
# Run:
#   bash benches/synthetic_e2e.sh             # 50,000 clients
#   bash benches/synthetic_e2e.sh 20000 50000 65000
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(50000)
POLL=${POLL:-2}          # poll interval
POLLS=${POLLS:-15}       # polls sampled (median)
SCRAPES=${SCRAPES:-20}

for tool in python3 curl cargo; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
cargo build --release --locked --quiet
BIN=$PWD/target/release/redis-clients-exporter
TCK=$(getconf CLK_TCK)
# shellcheck source=benches/lib.sh
. benches/lib.sh
metric() { awk -v m="$2" '!found && index($0, m) == 1 {print $NF; found = 1}' "$1"; }

echo "| clients | reply MB | poll ms (median of $POLLS) | CLIENT LIST read ms | aggregate ms | CPU s/poll | RSS MB | scrape ms | /metrics bytes | CLIENT LIST commands per poll |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for N in "${COUNTS[@]}"; do
    RP=$(free_port)
    python3 benches/fake_redis.py "$RP" "$N" > "$work/fake.out" & pids+=($!)
    for _ in $(seq 600); do grep -q ready "$work/fake.out" 2>/dev/null && break; sleep 0.1; done
    reply_bytes=$(awk '{print $2}' "$work/fake.out")
    EP=$(free_port)
    cat > "$work/ours.toml" <<EOF
listen = "127.0.0.1:$EP"
poll_interval_seconds = $POLL
# CLIENT LIST at every poll (its default back-off would skip most of them at this count).
client_list_backoff_clients = 1000000000
[[targets]]
address = "redis://127.0.0.1:$RP"
alias = "bench"
EOF
    RUST_LOG=warn "$BIN" --config "$work/ours.toml" & OPID=$!; pids+=("$OPID")
    m="http://127.0.0.1:$EP/metrics"
    for _ in $(seq 200); do curl -sf -o "$work/m" "$m" && grep -q 'stage="aggregate"' "$work/m" && break; sleep 0.1; done
    sleep "$POLL"
    c0=$(cpu_ticks "$OPID"); curl -s -o "$work/m" "$m"; p0=$(metric "$work/m" 'redis_clients_exporter_polls_total{')
    : > "$work/total"; : > "$work/cl"; : > "$work/agg"
    for _ in $(seq "$POLLS"); do
        sleep "$POLL"
        curl -s -o "$work/m" "$m"
        metric "$work/m" 'redis_clients_exporter_poll_duration_seconds{target="bench",stage="total"}' >> "$work/total"
        metric "$work/m" 'redis_clients_exporter_poll_duration_seconds{target="bench",stage="client_list"}' >> "$work/cl"
        metric "$work/m" 'redis_clients_exporter_poll_duration_seconds{target="bench",stage="aggregate"}' >> "$work/agg"
    done
    c1=$(cpu_ticks "$OPID"); p1=$(metric "$work/m" 'redis_clients_exporter_polls_total{')
    grep -q "redis_client_snapshot_connections{target=\"bench\"} $N\$" "$work/m" \
        || { echo "the exporter did not see $N clients" >&2; grep snapshot_connections "$work/m" >&2; exit 1; }
    times=()
    for _ in $(seq "$SCRAPES"); do
        read -r t b < <(curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "$m")
        times+=("$t")
    done
    ms() { median < "$1" | awk '{printf "%.1f", $1*1000}'; }
    scrape=$(printf '%s\n' "${times[@]}" | median | awk '{printf "%.1f", $1*1000}')
    cpu=$(awk -v a="$c0" -v b="$c1" -v p="$p0" -v q="$p1" -v t="$TCK" 'BEGIN {printf "%.4f", (b-a)/t/((q-p)>0?(q-p):1)}')
    cmds=$(metric "$work/m" 'redis_clients_exporter_client_list_commands{')
    echo "| $N synthetic | $(awk -v b="$reply_bytes" 'BEGIN {printf "%.1f", b/1048576}') | $(ms "$work/total") | $(ms "$work/cl") | $(ms "$work/agg") | $cpu | $(rss_mb "$OPID") | $scrape | $b | $cmds |"
    kill "$OPID"; wait "$OPID" 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
done
