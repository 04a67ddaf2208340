#!/usr/bin/env bash
# Soak test (not run in CI): the release exporter against a real redis-server under connection
# churn, for N minutes (default 5).
#
#   scripts/soak.sh [MINUTES]
#
# Load, all at once:
#   - redis-benchmark runs in a loop (50 connections opened and closed per run);
#   - 8 Python threads open and close named connections from 127.0.0.2-9 (~300/s), each
#     holding a changing pool of up to 25 open ones;
#   - every 5 s every client but the exporter is killed (CLIENT KILL ID, one by one);
#   - every 30 s the exporter's own connection is killed too (soaks the reconnect path);
#   - /metrics is scraped every second; the server's CLIENT LIST is checked every second for
#     connections named redis-clients-exporter.
# Reports the exporter's VmRSS and open fds at the start (after warm-up) and at the end, their
# maximum over the run, scrape count and errors, and the exporter's own poll counters.
# Exits non-zero if the exporter died, a scrape failed, or two exporter connections were seen.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-5}"
for tool in redis-server redis-cli redis-benchmark python3 cargo; do
    command -v "$tool" >/dev/null || { echo "soak: $tool not found" >&2; exit 2; }
done

echo "== building the release binary"
cargo build --release --locked --bin redis-clients-exporter
BIN="$PWD/target/release/redis-clients-exporter"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

REDIS_PORT="$(free_port)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode no --save "" \
    --appendonly no --dir "$WORK" --maxclients 10000 --loglevel warning \
    >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" PING >/dev/null

EXPORTER_PORT="$(free_port)"
cat >"$WORK/exporter.toml" <<EOF
listen = "127.0.0.1:$EXPORTER_PORT"
poll_interval_seconds = 1
[[targets]]
address = "redis://127.0.0.1:$REDIS_PORT"
alias = "soak"
EOF
RUST_LOG=info "$BIN" --config "$WORK/exporter.toml" >"$WORK/exporter.log" 2>&1 &
EXPORTER_PID=$!
PIDS+=("$EXPORTER_PID")
URL="http://127.0.0.1:$EXPORTER_PORT/metrics"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$EXPORTER_PID/status"; }
fds() { ls "/proc/$EXPORTER_PID/fd" | wc -l; }

# Warm-up: first successful poll, then a few more.
for _ in $(seq 1 100); do
    if python3 - "$URL" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()
sys.exit(0 if 'redis_up{target="soak"} 1' in body else 1)
PY
    sleep 0.2
done
sleep 3
RSS_START="$(rss_kib)"
FDS_START="$(fds)"
echo "== soak: ${MINUTES} min; redis :$REDIS_PORT (pid $REDIS_PID), exporter :$EXPORTER_PORT (pid $EXPORTER_PID)"
echo "   start: VmRSS ${RSS_START} kB, ${FDS_START} open fds"

DEADLINE=$(( $(date +%s) + MINUTES * 60 ))

# redis-benchmark in a loop: 50 connections per run, opened and closed.
(
    while [ "$(date +%s)" -lt "$DEADLINE" ]; do
        timeout 60 redis-benchmark -p "$REDIS_PORT" -c 50 -n 20000 -t ping,set,get,lpush -q --csv \
            >/dev/null 2>&1 || true
        sleep 1
    done
) &
PIDS+=("$!")

# Resource samples every 5 s.
(
    while [ "$(date +%s)" -lt "$DEADLINE" ] && [ -d "/proc/$EXPORTER_PID" ]; do
        echo "$(date +%s) $(rss_kib) $(fds)" >>"$WORK/resources.txt"
        sleep 5
    done
) &
PIDS+=("$!")

set +e
python3 - "$REDIS_PORT" "$URL" "$DEADLINE" <<'PY'
import random, socket, sys, threading, time, urllib.request

port, url, deadline = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
OURS = "redis-clients-exporter"
lock = threading.Lock()
stats = dict(churned=0, churn_errors=0, killed_others=0, killed_exporter=0, scrapes=0,
             scrape_errors=0, scrapes_down=0, max_ours=0, list_samples=0)

def bump(k, n=1):
    with lock:
        stats[k] += n

class Conn:
    def __init__(self, src="127.0.0.1"):
        self.s = socket.socket()
        self.s.settimeout(5)
        self.s.bind((src, 0))
        self.s.connect(("127.0.0.1", port))
        self.f = self.s.makefile("rb")
    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.read()
    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("closed")
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b"-"):
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode(errors="replace")
        if t == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ValueError(line)
    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

def churn(i):
    held = []
    rnd = random.Random(i)
    while time.time() < deadline:
        try:
            c = Conn("127.0.0.%d" % (2 + i))
            c.cmd("CLIENT", "SETNAME", "churn-%d-%d" % (i, rnd.randrange(20)))
            c.cmd("SET", "k%d" % rnd.randrange(1000), "v")
            c.cmd("GET", "k%d" % rnd.randrange(1000))
            bump("churned")
            if rnd.random() < 0.2:
                held.append(c)
            else:
                c.close()
            while len(held) > 25:
                held.pop(rnd.randrange(len(held))).close()
        except (OSError, ConnectionError, ValueError):
            bump("churn_errors")
            time.sleep(0.05)
        time.sleep(0.025)
    for c in held:
        c.close()

def killer():
    admin = None
    last_exporter_kill = time.time()
    while time.time() < deadline:
        time.sleep(5)
        try:
            if admin is None:
                admin = Conn()
                me = admin.cmd("CLIENT", "ID")
            kill_exporter = time.time() - last_exporter_kill >= 30
            for line in admin.cmd("CLIENT", "LIST").splitlines():
                f = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
                cid = int(f["id"])
                if cid == me:
                    continue
                ours = f.get("name") == OURS
                if ours and not kill_exporter:
                    continue
                if admin.cmd("CLIENT", "KILL", "ID", str(cid)) == 1:
                    bump("killed_exporter" if ours else "killed_others")
            if kill_exporter:
                last_exporter_kill = time.time()
        except (OSError, ConnectionError, ValueError, KeyError):
            admin = None

def value(body, name):
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None

def scraper():
    watcher = None
    last = ""
    while time.time() < deadline:
        t0 = time.time()
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = r.read().decode()
                ok = r.status == 200 and "redis_up{" in body
        except Exception as e:  # noqa: BLE001 - any failure is a failed scrape
            ok, body = False, ""
            print("scrape failed:", e, file=sys.stderr)
        bump("scrapes")
        if not ok:
            bump("scrape_errors")
        else:
            last = body
            if value(body, 'redis_up{target="soak"}') != 1:
                bump("scrapes_down")
        try:
            if watcher is None:
                watcher = Conn()
            ours = sum(1 for l in watcher.cmd("CLIENT", "LIST").splitlines()
                       if " name=%s " % OURS in l)
            with lock:
                stats["max_ours"] = max(stats["max_ours"], ours)
                stats["list_samples"] += 1
        except (OSError, ConnectionError, ValueError):
            watcher = None  # killed by the killer thread: reconnect next time
        time.sleep(max(0.0, 1.0 - (time.time() - t0)))
    return last

threads = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
threads.append(threading.Thread(target=killer))
for t in threads:
    t.start()
last = scraper()
for t in threads:
    t.join()

print("   scrapes: %(scrapes)d, failed: %(scrape_errors)d, showing redis_up 0: %(scrapes_down)d" % stats)
print("   churn: %(churned)d connections opened by the Python churners (%(churn_errors)d errors), "
      "%(killed_others)d clients killed, exporter connection killed %(killed_exporter)d times" % stats)
print("   most connections named redis-clients-exporter at once: %(max_ours)d "
      "(%(list_samples)d CLIENT LIST samples)" % stats)
for name in ['redis_clients_exporter_polls_total{target="soak"}',
             'redis_clients_exporter_client_list_lines_total{target="soak"}',
             'redis_clients_exporter_client_list_parse_errors_total{target="soak"}']:
    print("   %s %s" % (name, value(last, name)))
for line in last.splitlines():
    if line.startswith("redis_clients_exporter_poll_errors_total") and not line.endswith(" 0"):
        print("   " + line)
sys.exit(0 if stats["scrape_errors"] == 0 and stats["max_ours"] <= 1 else 1)
PY
LOAD_STATUS=$?
set -e

if [ ! -d "/proc/$EXPORTER_PID" ]; then
    echo "soak: FAIL: the exporter died; last log lines:" >&2
    tail -20 "$WORK/exporter.log" >&2
    exit 1
fi
RSS_END="$(rss_kib)"
FDS_END="$(fds)"
MAX_RSS="$(awk 'BEGIN {m = 0} $2 > m {m = $2} END {print m}' "$WORK/resources.txt")"
MAX_FDS="$(awk 'BEGIN {m = 0} $3 > m {m = $3} END {print m}' "$WORK/resources.txt")"
echo "   end:   VmRSS ${RSS_END} kB, ${FDS_END} open fds (max over the run: ${MAX_RSS} kB, ${MAX_FDS} fds)"
echo "   exporter log: $(grep -c 'target is down' "$WORK/exporter.log" || true) 'down' and $(grep -c 'target is up' "$WORK/exporter.log" || true) 'up' lines, $(grep -ci 'panic' "$WORK/exporter.log" || true) panics"
if [ "$LOAD_STATUS" != 0 ]; then
    echo "soak: FAIL (failed scrapes or doubled exporter connections)" >&2
    exit 1
fi
echo "soak: OK"
