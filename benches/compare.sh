#!/usr/bin/env bash
# Side-by-side: redis-clients-exporter vs the Go redis_exporter, same Redis, same idle clients,
# one run; writes docs/performance.md.
#
# Install step on a fresh Debian/Ubuntu machine:
#   sudo apt-get install -y redis-server redis-tools prometheus-redis-exporter python3 curl
# Run:
#   bash benches/compare.sh                 # 10,000 and 19,900 real clients
#   bash benches/compare.sh 2000            # any client counts
#
# Real clients are capped by the open-files limit of one process (redis-server needs one fd per
# client; the hard limit here is 20000, so at most 19,968). Larger counts (50,000) are covered by
# the criterion benchmark on a synthetic CLIENT LIST, which this script also runs.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(10000 19900)
SCRAPES=${SCRAPES:-20}
WINDOW=${WINDOW:-30}      # seconds of background polling measured for our exporter
POLL=${POLL:-5}           # our poll interval during the window

for tool in redis-server redis-cli prometheus-redis-exporter python3 curl cargo; do
    command -v "$tool" >/dev/null || { echo "missing $tool: see the install step at the top of $0" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"
cargo build --release --locked --quiet
BIN=$PWD/target/release/redis-clients-exporter
TCK=$(getconf CLK_TCK)
# shellcheck source=benches/lib.sh
. benches/lib.sh
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
metric() { curl -s "$1" | awk -v m="$2" '!found && index($0, m) == 1 {print $NF; found = 1}'; }
# Seconds of CPU per call of a command in Redis' own accounting (INFO commandstats).
redis_usec_per_call() { redis-cli -p "$1" INFO commandstats | tr -d '\r' | awk -F'[=,]' -v c="cmdstat_$2:calls" 'index($0, c) == 1 {print $6}'; }

# scrape URL N -> "median_ms bytes"
scrape_stats() {
    local url=$1 n=$2 times=() bytes=0
    for _ in $(seq "$n"); do
        read -r t b < <(curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "$url")
        times+=("$t"); bytes=$b
    done
    printf '%s\n' "${times[@]}" | median | awk -v b="$bytes" '{printf "%.1f %d\n", $1*1000, b}'
}

rows=()
loads=()
crit_loads=()
for N in "${COUNTS[@]}"; do
    RP=$(free_port)
    redis-server --port "$RP" --bind 127.0.0.1 --protected-mode no --save "" --appendonly no \
        --maxclients $((N + 64)) --dir "$work" --logfile "$work/redis-$RP.log" &
    pids+=($!); RPID=$!
    for _ in $(seq 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
    python3 benches/load_clients.py "$RP" "$N" --sources 200 > "$work/load.out" &
    LOADPID=$!; pids+=("$LOADPID")
    for _ in $(seq 600); do grep -q ready "$work/load.out" 2>/dev/null && break; sleep 0.1; done
    grep -q ready "$work/load.out" || { echo "load did not open $N clients" >&2; exit 1; }
    echo "== $N idle clients on redis :$RP ($(redis-cli -p "$RP" INFO clients | tr -d '\r' | grep connected_clients)), load: $(uptime | sed 's/.*load average/load average/')"
    loads+=("$N clients: $(uptime | sed 's/.*load average: //')")

    # --- ours: polls in the background; scrapes read memory.
    EP=$(free_port)
    cat > "$work/ours.toml" <<EOF
listen = "127.0.0.1:$EP"
poll_interval_seconds = $POLL
# Measure CLIENT LIST at every poll (its default back-off would skip most of them here).
client_list_backoff_clients = 1000000000
[[targets]]
address = "redis://127.0.0.1:$RP"
alias = "bench"
EOF
    RUST_LOG=warn "$BIN" --config "$work/ours.toml" & OPID=$!; pids+=("$OPID")
    wait_http "http://127.0.0.1:$EP/readyz"
    sleep 1
    redis-cli -p "$RP" CONFIG RESETSTAT >/dev/null
    c0=$(cpu_ticks "$OPID"); p0=$(metric "http://127.0.0.1:$EP/metrics" 'redis_clients_exporter_polls_total{')
    python3 benches/latency_probe.py "$RP" "$WINDOW" > "$work/lat-ours" &
    sleep "$WINDOW"; wait $!
    c1=$(cpu_ticks "$OPID"); p1=$(metric "http://127.0.0.1:$EP/metrics" 'redis_clients_exporter_polls_total{')
    read -r o_ms o_bytes < <(scrape_stats "http://127.0.0.1:$EP/metrics" "$SCRAPES")
    c2=$(cpu_ticks "$OPID")
    m="http://127.0.0.1:$EP/metrics"
    total=$(metric "$m" 'redis_clients_exporter_poll_duration_seconds{target="bench",stage="total"}')
    cl=$(metric "$m" 'redis_clients_exporter_poll_duration_seconds{target="bench",stage="client_list"}')
    agg=$(metric "$m" 'redis_clients_exporter_poll_duration_seconds{target="bench",stage="aggregate"}')
    redis_us=$(redis_usec_per_call "$RP" 'client|list')
    o_series=$(curl -s "$m" | grep -vc '^#')
    o_rss=$(rss_mb "$OPID")
    cpu_poll=$(awk -v a="$c0" -v b="$c1" -v p="$p0" -v q="$p1" -v t="$TCK" 'BEGIN {printf "%.4f", (b-a)/t/((q-p)>0?(q-p):1)}')
    cpu_scrape=$(awk -v a="$c1" -v b="$c2" -v n="$SCRAPES" -v t="$TCK" 'BEGIN {printf "%.4f", (b-a)/t/n}')
    poll_ms=$(awk -v x="$total" 'BEGIN {printf "%.1f", x*1000}')
    minus=$(awk -v x="$total" -v r="$redis_us" 'BEGIN {printf "%.1f", x*1000 - r/1000}')
    read -r _ l99 lmax _ < "$work/lat-ours"
    rows+=("| redis-clients-exporter | $N real | $o_ms | $cpu_scrape | $cpu_poll | $o_rss | $o_bytes | $o_series | $poll_ms (CLIENT LIST $(awk -v x="$cl" 'BEGIN {printf "%.1f", x*1000}'), aggregate $(awk -v x="$agg" 'BEGIN {printf "%.1f", x*1000}')) | $(awk -v r="$redis_us" 'BEGIN {printf "%.1f", r/1000}') | $minus | $l99 / $lmax |")
    kill "$OPID"; wait "$OPID" 2>/dev/null || true

    # --- Go redis_exporter: all work happens inside each scrape, on a new connection.
    for mode in with-client-list without; do
        GP=$(free_port)
        extra=(); [ "$mode" = with-client-list ] && extra=(--export-client-list)
        prometheus-redis-exporter --redis.addr "redis://127.0.0.1:$RP" --web.listen-address "127.0.0.1:$GP" \
            --include-system-metrics=false "${extra[@]}" 2>"$work/go.log" & GPID=$!; pids+=("$GPID")
        wait_http "http://127.0.0.1:$GP/health" || wait_http "http://127.0.0.1:$GP/metrics"
        curl -s -o /dev/null "http://127.0.0.1:$GP/metrics"   # warm-up
        redis-cli -p "$RP" CONFIG RESETSTAT >/dev/null
        python3 benches/latency_probe.py "$RP" 3600 > "$work/lat-go" & LP=$!
        sleep 0.5   # let the probe install its SIGTERM handler
        c0=$(cpu_ticks "$GPID")
        read -r g_ms g_bytes < <(scrape_stats "http://127.0.0.1:$GP/metrics" "$SCRAPES")
        c1=$(cpu_ticks "$GPID")
        kill -TERM "$LP" 2>/dev/null || true; wait "$LP" 2>/dev/null || true
        read -r _ g99 gmax _ < "$work/lat-go" || true
        g_series=$(curl -s "http://127.0.0.1:$GP/metrics" | grep -vc '^#')
        g_rss=$(rss_mb "$GPID")
        redis_us=$(redis_usec_per_call "$RP" 'client|list')
        cpu_scrape=$(awk -v a="$c0" -v b="$c1" -v n="$SCRAPES" -v t="$TCK" 'BEGIN {printf "%.4f", (b-a)/t/n}')
        rows+=("| redis_exporter $mode | $N real | $g_ms | $cpu_scrape | (in the scrape) | $g_rss | $g_bytes | $g_series | (in the scrape) | $(awk -v r="${redis_us:-0}" 'BEGIN {printf "%.1f", r/1000}') | | ${g99:-?} / ${gmax:-?} |")
        kill "$GPID"; wait "$GPID" 2>/dev/null || true
    done
    kill "$RPID" "$LOADPID" 2>/dev/null || true
    wait 2>/dev/null || true
    pids=()
done

# Criterion on a busy machine: RUNS runs, each benchmark's best median and the spread of the
# medians, with the load average at the start of each run.
RUNS=${RUNS:-3}
echo "== criterion (synthetic CLIENT LIST), $RUNS runs"
for _ in $(seq "$RUNS"); do
    crit_loads+=("$(uptime | sed 's/.*load average: //')")
    cargo bench --bench client_list --quiet -- --warm-up-time 1 --measurement-time 5 2>/dev/null \
        | awk '/^(client_list|parse_aggregate)\//{name=$1}
               /time:/ && name {t[name]=$4" "$5}
               /thrpt:/ && name {print name, t[name], $4, $5; name=""}' >> "$work/crit"
done
# name, time of one reply (ms) and lines/s (M) for each run -> best and range.
crit=$(awk '{ms=$2; if ($3=="us"||$3=="µs") ms/=1000; else if ($3=="s") ms*=1000;
             m=$4; if ($5=="Kelem/s") m/=1000; else if ($5=="elem/s") m/=1e6;
             if (!($1 in best) || m>best[$1]) {best[$1]=m; bt[$1]=ms}
             if (!($1 in lo) || m<lo[$1]) lo[$1]=m; if (!($1 in hi) || m>hi[$1]) hi[$1]=m
             if (!($1 in order)) {order[$1]=++n; names[n]=$1} }
         END {for (i=1;i<=n;i++) {k=names[i]; printf "| %s | %.2f M | %.2f–%.2f M | %.1f |\n", k, best[k], lo[k], hi[k], bt[k]}}' "$work/crit")

cpu=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
# The part below this marker is written by hand (analysis, instruction counts): kept as it is.
marker='<!-- Written by hand below this line; benches/compare.sh keeps it. -->'
kept=$(awk -v m="$marker" 'found {print} index($0, m) == 1 {found = 1}' docs/performance.md 2>/dev/null || true)
{
    echo "# Performance"
    echo
    echo "Made by \`RUNS=$RUNS bash benches/compare.sh ${COUNTS[*]}\` on $(date -u "+%Y-%m-%d %H:%M UTC"), $(nproc) cores ($cpu),"
    echo "$(redis-server --version | awk '{print $1, $2, $3}'), $(prometheus-redis-exporter --version 2>&1 | grep -o 'Exporter [^ ]*' | head -1 | sed 's/Exporter/redis_exporter/'),"
    echo "redis-clients-exporter $(awk -F'"' '/^version/{print $2; exit}' Cargo.toml) at $(git rev-parse --short HEAD 2>/dev/null || echo '?') (release build, $(rustc --version | awk '{print $1, $2}')), Linux $(uname -r)."
    echo "The machine is a shared VM: its neighbours add noise (load averages below), so wall times are"
    echo "upper bounds. Clients are real idle TCP connections"
    echo "from 200 loopback source addresses (benches/load_clients.py), one name per source."
    echo
    echo "Columns: scrape wall time (median of $SCRAPES), CPU seconds per scrape, CPU seconds per"
    echo "background poll (ours: INFO + CONFIG GET + CLIENT LIST + aggregation every ${POLL}s, measured over"
    echo "${WINDOW}s), RSS, /metrics bytes and series, our poll time by stage, Redis' own CLIENT LIST"
    echo "time (INFO commandstats usec_per_call), our poll time minus it, and Redis PING latency p99 /"
    echo "max (ms) from a held connection while our exporter polled (benches/latency_probe.py)."
    echo
    echo "| exporter | clients | scrape ms | CPU s/scrape | CPU s/poll | RSS MB | /metrics bytes | series | poll ms | Redis CLIENT LIST ms | poll − Redis ms | PING p99 / max ms |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Load average (1, 5, 15 min) when each client count started: $(IFS=';'; echo "${loads[*]}")."
    echo
    echo "## Parse + aggregate, synthetic CLIENT LIST (criterion)"
    echo
    echo "\`cargo bench --bench client_list -- --warm-up-time 1 --measurement-time 5\`, run $RUNS times"
    echo "(load average at the start of each run: $(IFS=';'; echo "${crit_loads[*]}")). Lines per second are"
    echo "criterion's median of each run: the best run, and the range over the runs. The replies are"
    echo "synthetic (src/analysis/synthetic.rs: Redis 7 lines, 20 clients per source, 50 names) except"
    echo "\`real_fixture_x500\`, the real capture tests/fixtures/client_list_redis7.0.txt repeated."
    echo "\`client_list/*\` and \`parse_aggregate/synthetic_50k_one_thread\` run on one thread;"
    echo "\`parse_aggregate/synthetic_50k\` runs as the poller does: a reply of 8 MiB or more is aggregated"
    echo "in two halves on two threads (aggregate::PARALLEL_MIN_BYTES)."
    echo
    echo "| benchmark | lines/s, best run | range over runs | ms per reply, best run |"
    echo "| --- | --- | --- | --- |"
    echo "$crit"
    echo
    echo "The allocation check (\`cargo test --test alloc\`) proves zero heap allocations per line after warm-up."
    echo
    echo "$marker"
    if [ -n "$kept" ]; then echo "$kept"; fi
} > docs/performance.md.new
mv docs/performance.md.new docs/performance.md
cat docs/performance.md
