#!/usr/bin/env bash
# The size and the exporter's CPU of one /metrics scrape in each negotiated form (0.0.4 and
# OpenMetrics, plain and gzip), at N targets (aliases of one local redis-server, as in
# docs/performance.md's fleet runs). CPU is the exporter's utime+stime over SCRAPES scrapes of a
# form, minus what it spent polling in a quiet interval of the same length.
#
#   bash benches/negotiation.sh [N=1000] [SCRAPES=20]      (needs redis-server, curl; builds --release)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
scrapes=${2:-20}
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet --bin redis-clients-exporter
bin=$target/release/redis-clients-exporter
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
redis-server --port 0 --unixsocket "$dir/r.sock" --save '' --daemonize no >/dev/null &
for _ in $(seq 50); do [ -S "$dir/r.sock" ] && break; sleep 0.1; done
{
    echo 'listen = "127.0.0.1:0"'
    for i in $(seq 0 $((n - 1))); do
        printf '[[targets]]\naddress = "unix://%s/r.sock"\nalias = "t%d"\n' "$dir" "$i"
    done
} >"$dir/c.toml"
"$bin" --config "$dir/c.toml" --listen 127.0.0.1:19816 >"$dir/log" 2>&1 &
pid=$!
url=http://127.0.0.1:19816/metrics
for _ in $(seq 200); do
    [ "$(curl -s $url | grep -c '^redis_up{.*} 1$' || true)" -ge "$n" ] && break
    sleep 0.5
done
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
measure() {
    local name=$1 accept=$2 encoding=$3 size t0 t1 q0 q1 start elapsed
    size=$(curl -s -H "Accept: $accept" -H "Accept-Encoding: $encoding" -o /dev/null -w '%{size_download}' $url)
    start=$(date +%s.%N)
    t0=$(cpu)
    for _ in $(seq "$scrapes"); do
        curl -s -H "Accept: $accept" -H "Accept-Encoding: $encoding" -o /dev/null $url
    done
    t1=$(cpu)
    elapsed=$(echo "$(date +%s.%N) - $start" | bc)
    q0=$(cpu)
    sleep "$elapsed"
    q1=$(cpu)
    echo "$name bytes=$size cpu_ms_per_scrape=$(echo "scale=1; (($t1 - $t0) - ($q1 - $q0)) * 1000 / $hz / $scrapes" | bc)"
}
echo "targets=$n scrapes=$scrapes"
measure text-plain 'text/plain' identity
measure text-gzip 'text/plain' gzip
measure openmetrics-plain 'application/openmetrics-text;version=1.0.0' identity
measure openmetrics-gzip 'application/openmetrics-text;version=1.0.0' gzip
