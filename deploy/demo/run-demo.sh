#!/usr/bin/env bash
# Local demo, no Docker needed: a throwaway redis-server on a free loopback port, the exporter
# against it, and the leaky client (deploy/leaky-client/leaky_client.py) opening idle
# connections from 127.0.0.2 while healthy pools hold connections from 127.0.0.3-5. If
# `prometheus` is installed (Debian: apt-get install prometheus), it also runs one with the
# shipped rules, so the alerts can be watched firing. Ctrl-C stops and removes everything.
#
#   bash deploy/demo/run-demo.sh                    # until Ctrl-C
#   bash deploy/demo/run-demo.sh --duration 120     # non-interactive: stops by itself
#
# Needs redis-server and python3; builds the exporter with `cargo build --release --locked`
# (into cargo's target directory: $CARGO_TARGET_DIR when set, else ./target) unless
# --exporter-bin (or --no-build) says which binary to use.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

usage() {
    cat <<'EOF'
usage: deploy/demo/run-demo.sh [options]
  --duration SECONDS     stop after this many seconds (default: run until Ctrl-C)
  --exporter-bin PATH    use this exporter binary instead of building one
  --no-build             use the release binary already built in cargo's target directory
                         ($CARGO_TARGET_DIR when set, else ./target) as it is
  --leak-rate N          leaked connections per second (default 1)
  --maxclients N         Redis maxclients (default 200: the leak reaches it in ~3 minutes)
  --redis-port PORT      first Redis port to try (default or 0: a random free one)
  --exporter-port PORT   first exporter port to try (default 9816; 0: a random free one)
  --no-prometheus        do not start Prometheus even if it is installed
  --quiet-clients        only print the leaky client's summary
  -h, --help             this help
EOF
}

duration=0
exporter_bin=""
exporter_bin_given=""
build=1
leak_rate=1
maxclients=200
redis_port=""
exporter_port=9816
want_prometheus=1
quiet_clients=""
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --exporter-bin) exporter_bin=$2; exporter_bin_given=1; build=0; shift 2 ;;
        --no-build) build=0; shift ;;
        --leak-rate) leak_rate=$2; shift 2 ;;
        --maxclients) maxclients=$2; shift 2 ;;
        --redis-port) redis_port=$2; shift 2 ;;
        --exporter-port) exporter_port=$2; shift 2 ;;
        --no-prometheus) want_prometheus=0; shift ;;
        --quiet-clients) quiet_clients=--quiet; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done

# Port 0 means "any free port".
if [ "$exporter_port" = 0 ]; then exporter_port=""; fi
if [ "$redis_port" = 0 ]; then redis_port=""; fi

for tool in redis-server python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (Debian: apt-get install redis-server python3)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/redis-clients-demo.XXXXXX")
pids=()
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "== stopping the demo"
    # Our own children only, newest first: leaky client, Prometheus, exporter, Redis.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free TCP port on 127.0.0.1 as the kernel sees it now (the servers below still retry, since
# another process can take it before they bind).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_status URL: the HTTP status code, or 000 when nothing answers.
http_status() {
    python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}

http_ok() { [ "$(http_status "$1")" = 200 ]; }

# wait_for CHECK_CMD PID SECONDS: poll until CHECK_CMD succeeds; fail early if PID died.
wait_for() {
    local check=$1 pid=$2 tries=$(($3 * 10))
    while ((tries-- > 0)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if eval "$check"; then kill -0 "$pid" 2>/dev/null; return; fi
        sleep 0.1
    done
    return 1
}

redis_ping() {
    python3 - "$1" <<'EOF'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
EOF
}

# cargo's target directory as cargo itself resolves it ($CARGO_TARGET_DIR, build.target-dir in
# a .cargo/config.toml, else ./target): where `cargo build` below writes the binary.
cargo_target_dir() {
    local dir
    dir=$(cargo metadata --format-version 1 --no-deps --locked 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null) || dir=""
    if [ -n "$dir" ]; then
        echo "$dir"
    else
        echo "${CARGO_TARGET_DIR:-$root/target}"
    fi
}

if [ -z "$exporter_bin" ]; then
    command -v cargo >/dev/null || { echo "error: cargo not found: install Rust, or pass --exporter-bin PATH" >&2; exit 1; }
    exporter_bin=$(cargo_target_dir)/release/redis-clients-exporter
    if [ "$build" = 1 ]; then
        echo "== building the exporter: cargo build --release --locked"
        cargo build --release --locked
    fi
fi
if [ ! -x "$exporter_bin" ]; then
    if [ "$build" = 1 ]; then
        echo "error: cargo build succeeded but $exporter_bin is not there" >&2
    elif [ -n "$exporter_bin_given" ]; then
        echo "error: --exporter-bin $exporter_bin: no such executable" >&2
    else
        echo "error: exporter binary $exporter_bin not found: build it (drop --no-build) or pass --exporter-bin PATH" >&2
    fi
    exit 1
fi

echo "== starting redis-server (maxclients $maxclients) in $work"
redis_pid=""
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=${redis_port:-$(free_port)}
    redis_port=""
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode no \
        --maxclients "$maxclients" --save "" --appendonly no --dir "$work" \
        --logfile "$work/redis.log" --daemonize no &
    pid=$!
    if wait_for "redis_ping $port" "$pid" 5; then
        redis_pid=$pid
        redis_port=$port
        pids+=("$pid")
        break
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "   port $port unavailable (attempt $attempt), trying another"
done
[ -n "$redis_pid" ] || { echo "error: could not start redis-server; log:" >&2; tail -5 "$work/redis.log" >&2; exit 1; }
echo "   redis-server on 127.0.0.1:$redis_port (pid $redis_pid)"

cat >"$work/exporter.toml" <<EOF
log_format = "text"
top_k = 50
# Short, so that leaked connections count as idle quickly in the demo (default 60).
idle_threshold_seconds = 30

[[targets]]
address = "redis://127.0.0.1:$redis_port"
alias = "demo"
poll_interval_seconds = 5
EOF

echo "== starting the exporter ($exporter_bin)"
exporter_pid=""
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    eport=${exporter_port:-$(free_port)}
    exporter_port=""
    if [ "$(http_status "http://127.0.0.1:$eport/")" != 000 ]; then
        echo "   port $eport is taken (attempt $attempt), trying another"
        continue
    fi
    RUST_LOG=${RUST_LOG:-info} "$exporter_bin" --config "$work/exporter.toml" \
        --listen "127.0.0.1:$eport" >"$work/exporter.log" 2>&1 &
    pid=$!
    if wait_for "http_ok http://127.0.0.1:$eport/readyz" "$pid" 15; then
        exporter_pid=$pid
        exporter_port=$eport
        pids+=("$pid")
        break
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "   port $eport unavailable or exporter not ready (attempt $attempt); log:"
    tail -3 "$work/exporter.log" | sed 's/^/     /'
done
[ -n "$exporter_pid" ] || { echo "error: could not start the exporter" >&2; exit 1; }
echo "   exporter on 127.0.0.1:$exporter_port (pid $exporter_pid), ready"

prom_port=""
if [ "$want_prometheus" = 1 ] && command -v prometheus >/dev/null; then
    echo "== starting Prometheus with alerts/redis-clients.rules.yml"
    mkdir -p "$work/prometheus"
    cat >"$work/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $root/alerts/redis-clients.rules.yml
scrape_configs:
  - job_name: redis-clients-exporter
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
EOF
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        prometheus --config.file="$work/prometheus/prometheus.yml" \
            --storage.tsdb.path="$work/prometheus/data" \
            --web.listen-address="127.0.0.1:$port" >"$work/prometheus.log" 2>&1 &
        pid=$!
        if wait_for "http_ok http://127.0.0.1:$port/-/ready" "$pid" 20; then
            prom_port=$port
            pids+=("$pid")
            break
        fi
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [ -n "$prom_port" ] || echo "   Prometheus did not start (see above); going on without it"
fi

echo "== starting the leaky client (deploy/leaky-client/leaky_client.py)"
# No --duration here: the script stops it (SIGTERM: it closes its connections and prints a
# summary) after reading the exporter's last view, while the connections are still open.
python3 -u deploy/leaky-client/leaky_client.py --port "$redis_port" \
    --leak-sources 127.0.0.2 --leak-rate "$leak_rate" --leak-names "orders-api:pool,," \
    --pool-sources 127.0.0.3,127.0.0.4,127.0.0.5 --pool-size 5 \
    --pool-names billing-worker,session-store,reporting \
    $quiet_clients > >(sed -u 's/^/   [leaky-client] /') 2>&1 &
leaky_pid=$!
pids+=("$leaky_pid")

cat <<EOF

== the demo runs; look at:
   metrics       http://127.0.0.1:$exporter_port/metrics
   landing page  http://127.0.0.1:$exporter_port/
   diagnosis     http://127.0.0.1:$exporter_port/diagnose?target=demo&format=html   (also format=text, markdown; JSON without)
   readiness     http://127.0.0.1:$exporter_port/readyz
   per source    curl -s http://127.0.0.1:$exporter_port/metrics | grep '^redis_client_connections{'
   Redis         redis-cli -p $redis_port client list   (refused once maxclients is reached)
EOF
if [ -n "$prom_port" ]; then
    cat <<EOF
   Prometheus    http://127.0.0.1:$prom_port/alerts   (RedisClientSourceDominant, RedisConnectionsRejected...)
                 http://127.0.0.1:$prom_port/graph?g0.expr=redis_client_connections
EOF
fi
if [ "$duration" = 0 ]; then
    echo "   Ctrl-C stops everything."
else
    echo "   stopping by itself after ${duration}s."
fi
echo

if [ "$duration" = 0 ]; then
    wait "$leaky_pid" || true
    echo "error: the leaky client stopped by itself" >&2
    exit 1
fi
# In the background so that SIGTERM/SIGINT interrupt the wait at once.
sleep "$duration" &
sleep_pid=$!
pids+=("$sleep_pid")
wait "$sleep_pid"
kill -0 "$leaky_pid" 2>/dev/null || { echo "error: the leaky client stopped early" >&2; exit 1; }

echo "== what the exporter saw last"
python3 - "http://127.0.0.1:$exporter_port/metrics" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
wanted = ("redis_up{", "redis_connected_clients{", "redis_config_maxclients{",
          "redis_rejected_connections_total{", "redis_client_connections{",
          "redis_client_connections_by_name{", "redis_client_source_idle_connections{")
for line in text.splitlines():
    if line.startswith(wanted):
        print("   " + line)
EOF
echo "== what /diagnose says (text)"
python3 - "http://127.0.0.1:$exporter_port/diagnose?target=demo&format=text" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
for line in text.splitlines()[:6]:
    print("   " + line)
EOF
