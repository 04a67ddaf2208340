#!/usr/bin/env bash
# Many targets: one release exporter polling TARGETS targets (aliases spread over SERVERS
# redis-server processes, so each target still has its own held connection and its own poller)
# at INTERVAL seconds, scraped like Prometheus every INTERVAL seconds. After WARMUP seconds it
# measures the exporter's CPU seconds over DURATION seconds (from /proc/PID/stat) and its RSS.
#
#   bash scripts/scale.sh                       # 200 targets, 20 servers, 15 s, 180 s window
#   TARGETS=500 SERVERS=50 DURATION=300 bash scripts/scale.sh
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

cargo build --release --locked -q
BIN=target/release/redis-clients-exporter
# shellcheck source=benches/lib.sh
. benches/lib.sh

PORTS=()
for i in $(seq 1 "$SERVERS"); do
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        mkdir -p "$work/r$i"
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$work/r$i" >/dev/null 2>&1 &
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
    for i in $(seq 0 $((TARGETS - 1))); do
        port=${PORTS[$((i % ${#PORTS[@]}))]}
        printf '[[targets]]\naddress = "redis://127.0.0.1:%s"\nalias = "t%03d"\n' "$port" "$i"
    done
} >"$CFG"
RUST_LOG=warn "$BIN" --config "$CFG" 2>"$work/exporter.log" &
EXP=$!
pids+=("$EXP")
URL="http://127.0.0.1:$LISTEN_PORT/metrics"
for _ in $(seq 1 50); do curl -sf "$URL" >/dev/null && break; sleep 0.1; done

scrape_loop() {
    while true; do curl -sf -o /dev/null "$URL" || true; sleep "$INTERVAL"; done
}
scrape_loop &
pids+=("$!")

echo "== warming up ${WARMUP}s"
sleep "$WARMUP"
t0=$(cpu_ticks "$EXP")
echo "== measuring ${DURATION}s"
sleep "$DURATION"
t1=$(cpu_ticks "$EXP")
hz=$(getconf CLK_TCK)
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$EXP/status")
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$EXP/status")
body=$(curl -sf "$URL")
up=$(grep -c '^redis_up{.*} 1$' <<<"$body" || true)
series=$(grep -vc '^#' <<<"$body" || true)
threads=$(awk '/^Threads/ {print $2}' "/proc/$EXP/status")
python3 - "$t0" "$t1" "$hz" "$DURATION" "$rss_kb" "$hwm_kb" "$up" "$series" "${#body}" "$threads" "$TARGETS" "$SERVERS" "$INTERVAL" <<'EOF'
import sys
t0, t1, hz, dur, rss, hwm, up, series, size, threads, targets, servers, interval = map(float, sys.argv[1:])
cpu = (t1 - t0) / hz
print(f"targets {int(targets)} (on {int(servers)} servers), poll and scrape every {int(interval)} s")
print(f"targets up: {int(up)}; /metrics: {int(series)} series, {int(size)} bytes; threads {int(threads)}")
print(f"CPU: {cpu:.2f} s over {int(dur)} s = {cpu / dur * 60:.2f} CPU s per minute ({cpu / dur * 100:.2f}% of one core)")
print(f"CPU per poll: {cpu / (dur / interval * targets) * 1000:.3f} ms")
print(f"RSS: {rss / 1024:.1f} MiB (peak {hwm / 1024:.1f} MiB)")
EOF
if [ -s "$work/exporter.log" ]; then echo "== exporter log"; tail -5 "$work/exporter.log"; fi
