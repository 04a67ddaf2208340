#!/usr/bin/env bash
# Many targets: one release exporter polling TARGETS targets (aliases spread over SERVERS
# redis-server processes, so each target still has its own held connection and its own poller)
# at INTERVAL seconds, scraped like Prometheus every INTERVAL seconds. After WARMUP seconds it
# measures the exporter's CPU seconds over DURATION seconds (from /proc/PID/stat), its RSS after
# the warm-up and at the end (and every RSS_EVERY seconds in between, to show whether it is
# flat), and the time and size of SCRAPES timed scrapes of /metrics (median).
#
#   bash scripts/scale.sh                                  # 200 targets, 20 servers, 180 s window
#   TARGETS=1000 SERVERS=10 WARMUP=120 DURATION=1800 bash scripts/scale.sh
#   TARGETS=5000 SERVERS=10 bash scripts/scale.sh
#   BIN=/tmp/old-exporter TARGETS=1000 SERVERS=10 bash scripts/scale.sh   # another build
#   SHARD=0/2 TARGETS=1000 bash scripts/scale.sh           # one replica of two (--shard)
#   GZIP=1 TARGETS=1000 bash scripts/scale.sh              # scrapes ask for gzip, as Prometheus
#
# Only processes it starts are stopped; the servers listen on loopback ports it finds free.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=${TARGETS:-200}
SERVERS=${SERVERS:-20}
INTERVAL=${INTERVAL:-15}
WARMUP=${WARMUP:-30}
DURATION=${DURATION:-180}
CLIENTS_PER_SERVER=${CLIENTS_PER_SERVER:-50}
RSS_EVERY=${RSS_EVERY:-60}
SCRAPES=${SCRAPES:-5}
SHARD=${SHARD:-}
# GZIP=1: scrape as Prometheus does, asking for gzip (curl unpacks the body; sizes are on the wire).
CURL_GZIP=()
if [ "${GZIP:-0}" = 1 ]; then CURL_GZIP=(--compressed); fi

if [ -z "${BIN:-}" ]; then
    cargo build --release --locked -q
    BIN=target/release/redis-clients-exporter
fi
# shellcheck source=benches/lib.sh
. benches/lib.sh

PORTS=()
for i in $(seq 1 "$SERVERS"); do
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        mkdir -p "$work/r$i"
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --maxclients 10000 --dir "$work/r$i" >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 1 50); do
            redis-cli -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null && redis-cli -p "$port" ping >/dev/null 2>&1; then
            pids+=("$pid"); PORTS+=("$port"); break
        fi
    done
done
echo "== $SERVERS redis-server processes up"

# Idle application connections, so that each CLIENT LIST has something to fold.
python3 - "$CLIENTS_PER_SERVER" "${PORTS[@]}" <<'EOF' &
import socket, sys, time
n = int(sys.argv[1]); held = []
for port in sys.argv[2:]:
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", int(port)))
        name = f"app-{i % 5}"
        s.sendall(f"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n${len(name)}\r\n{name}\r\n".encode())
        s.recv(64); held.append(s)
time.sleep(10**6)
EOF
pids+=("$!")

CFG="$work/config.toml"
LISTEN_PORT=$(free_port)
{
    echo "listen = \"127.0.0.1:$LISTEN_PORT\""
    echo "poll_interval_seconds = $INTERVAL"
    if [ -n "$SHARD" ]; then echo "shard = \"$SHARD\""; fi
    for i in $(seq 0 $((TARGETS - 1))); do
        port=${PORTS[$((i % ${#PORTS[@]}))]}
        printf '[[targets]]\naddress = "redis://127.0.0.1:%s"\nalias = "t%04d"\n' "$port" "$i"
    done
} >"$CFG"
RUST_LOG=warn "$BIN" --config "$CFG" 2>"$work/exporter.log" &
EXP=$!
pids+=("$EXP")
URL="http://127.0.0.1:$LISTEN_PORT/metrics"
for _ in $(seq 1 100); do curl -sf "$URL" >/dev/null && break; sleep 0.1; done

scrape_loop() {
    while true; do curl -sf "${CURL_GZIP[@]}" -o /dev/null "$URL" || true; sleep "$INTERVAL"; done
}
scrape_loop &
pids+=("$!")

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$EXP/status"; }
echo "== warming up ${WARMUP}s"
sleep "$WARMUP"
rss_warm=$(rss_kib)
t0=$(cpu_ticks "$EXP")
echo "== measuring ${DURATION}s (RSS every ${RSS_EVERY}s: elapsed s, MiB)"
start=$(date +%s)
while true; do
    left=$((start + DURATION - $(date +%s)))
    [ "$left" -le 0 ] && break
    sleep $((left < RSS_EVERY ? left : RSS_EVERY))
    echo "   rss $(($(date +%s) - start)) $(awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$EXP/status")"
done
t1=$(cpu_ticks "$EXP")
hz=$(getconf CLK_TCK)
rss_end=$(rss_kib)
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$EXP/status")
# Timed scrapes: wall time and bytes as curl sees them, the median of SCRAPES.
for _ in $(seq 1 "$SCRAPES"); do
    curl -sf "${CURL_GZIP[@]}" -o "$work/body" -w '%{time_total} %{size_download}\n' "$URL"
done >"$work/scrapes"
scrape_ms=$(awk '{print $1 * 1000}' "$work/scrapes" | median)
scrape_bytes=$(awk '{print $2}' "$work/scrapes" | median)
up=$(grep -c '^redis_up{.*} 1$' "$work/body" || true)
series=$(grep -vc '^#' "$work/body" || true)
threads=$(awk '/^Threads/ {print $2}' "/proc/$EXP/status")
python3 - "$t0" "$t1" "$hz" "$DURATION" "$rss_warm" "$rss_end" "$hwm_kb" "$up" "$series" "$scrape_bytes" "$threads" "$TARGETS" "$SERVERS" "$INTERVAL" "$scrape_ms" "$WARMUP" <<'EOF'
import sys
(t0, t1, hz, dur, rss_warm, rss_end, hwm, up, series, size, threads, targets, servers,
 interval, scrape_ms, warmup) = map(float, sys.argv[1:])
cpu = (t1 - t0) / hz
print(f"targets {int(targets)} (on {int(servers)} servers), poll and scrape every {int(interval)} s")
print(f"targets up: {int(up)}; /metrics: {int(series)} series, {int(size)} bytes, {scrape_ms:.0f} ms (median); threads {int(threads)}")
print(f"CPU: {cpu:.2f} s over {int(dur)} s = {cpu / dur * 60:.2f} CPU s per minute ({cpu / dur * 100:.2f}% of one core)")
print(f"CPU per poll: {cpu / (dur / interval * targets) * 1000:.3f} ms")
print(f"RSS: {rss_warm / 1024:.1f} MiB after {int(warmup)} s warm-up, {rss_end / 1024:.1f} MiB {int(dur)} s later (peak {hwm / 1024:.1f} MiB); {rss_end / targets:.1f} kB per target")
# One line for scripts/fleet.sh's table (RSS per target in kB of 1,000 bytes).
print(f"row: {int(targets)} {int(servers)} {int(up)} {rss_end / 1024:.1f} {rss_end * 1.024 / targets:.1f} "
      f"{cpu / dur * 60:.2f} {cpu / dur * 60 / targets * 1000:.3f} {scrape_ms:.0f} {size / 1e6:.2f} {int(series)}")
EOF
# Targets that went down during the run (a healthy fleet has none): the log says so once per
# state change.
echo "down events: $(grep -c 'target is down' "$work/exporter.log" || true)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -s "$work/exporter.log" ]; then echo "== exporter log"; tail -5 "$work/exporter.log"; fi
