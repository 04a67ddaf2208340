#!/usr/bin/env bash
# Fleet cost per target at several fleet sizes (issue 31): scripts/scale.sh once per size, the
# same small target each time, and one Markdown table of the runs on stdout (each run's own
# report on stderr).
#
#   bash scripts/fleet.sh                          # 100, 1,000 and 10,000 targets, 50 per server
#   SIZES="100 1000" bash scripts/fleet.sh
#   PER_SERVER=0 SERVERS=20 bash scripts/fleet.sh  # every size over 20 servers (issue 31's layout)
#   BIN=/tmp/old-exporter bash scripts/fleet.sh    # another build
#
# Targets are aliases of redis-server processes (each alias its own poller and held
# connection), so a server's CLIENT LIST also lists every exporter connection to it. With
# PER_SERVER targets per server (default 50, plus scale.sh's 50 idle application connections)
# every target lists the same ~100 clients at every size, so the cost per target compares
# across sizes; with PER_SERVER=0 and a fixed SERVERS the lists grow with the fleet (550 lines
# a target at 10,000 over 20 servers). Each run warms up for WARMUP seconds (default 90), then
# measures DURATION (default 60; SMALL_DURATION, default 300, under 1,000 targets: CPU is read
# in 10 ms ticks, and 100 targets use ~0.1 s a minute); the rest of the environment goes to
# scale.sh (GZIP=1: scrapes ask for gzip, as Prometheus does).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"100 1000 10000"}
PER_SERVER=${PER_SERVER:-50}
export WARMUP=${WARMUP:-90}
DURATION=${DURATION:-60}
SMALL_DURATION=${SMALL_DURATION:-300}
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked -q
    BIN=target/release/redis-clients-exporter
fi
export BIN

rows=()
for n in $SIZES; do
    if [ "$PER_SERVER" -gt 0 ]; then
        servers=$(((n + PER_SERVER - 1) / PER_SERVER))
    else
        servers=${SERVERS:-20}
    fi
    echo "== $n targets on $servers servers" >&2
    duration=$DURATION
    if [ "$n" -lt 1000 ]; then duration=$SMALL_DURATION; fi
    out=$(TARGETS=$n SERVERS=$servers DURATION=$duration bash scripts/scale.sh)
    echo "$out" >&2
    row=$(echo "$out" | awk '/^row: / {sub(/^row: /, ""); print}')
    down=$(echo "$out" | awk '/^down events: / {print $3}')
    load=$(echo "$out" | awk -F': ' '/^load average: / {print $2}')
    rows+=("$row $down $load")
done

version=$("$BIN" --version 2>/dev/null | head -1 || true)
echo
echo "Made by \`SIZES=\"$SIZES\" PER_SERVER=$PER_SERVER WARMUP=$WARMUP DURATION=$DURATION SMALL_DURATION=$SMALL_DURATION GZIP=${GZIP:-0} bash scripts/fleet.sh\`"
echo "on $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores, $(redis-server --version | awk '{print $3}'), ${version:-$BIN}."
echo
echo "| targets | servers | up | RSS | RSS per target | CPU per minute | per target per minute | scrape (median) | /metrics | down events | load average |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for r in "${rows[@]}"; do
    # scale.sh's row (targets servers up rss_mib kb cpu_min ms_per_target scrape_ms mb series),
    # then the down events and the three load averages.
    read -r t s u rss kb cpu per scrape mb series down l1 l5 l15 <<<"$r"
    printf '| %s | %s | %s | %s MiB | %s kB | %s s | %s ms | %s ms | %s MB, %s series | %s | %s %s %s |\n' \
        "$t" "$s" "$u" "$rss" "$kb" "$cpu" "$per" "$scrape" "$mb" "$series" "$down" "$l1" "$l5" "$l15"
done
