#!/usr/bin/env python3
"""A misbehaving Redis client, for demos: it leaks connections so that the
redis-clients-exporter dashboards and alerts have something to show.

Two kinds of connections, both speaking RESP directly over sockets (standard
library only, no redis-py):

* leaked: opened at --leak-rate per second from the --leak-sources addresses,
  optionally named with CLIENT SETNAME, then never used again (they go idle and
  stay open, as a connection pool that forgets to return connections would);
* pool: --pool-size connections per --pool-sources address, named after
  --pool-names, PINGed every --pool-ping-seconds so that they never look idle.

Leaking stops at --max-leaked connections (0: go on until Redis refuses with
"ERR max number of clients reached", then keep knocking every
--refused-retry-seconds, which is what makes rejected_connections grow).
Everything is closed on exit: after --duration seconds, on SIGINT or SIGTERM.

Local demo (several loopback source addresses, Linux routes all of 127/8 to lo):

    python3 leaky_client.py --port 6379 --leak-sources 127.0.0.2 \
        --pool-sources 127.0.0.3,127.0.0.4,127.0.0.5 --duration 600
"""

import argparse
import itertools
import os
import signal
import socket
import sys
import time


class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


def encode(*args):
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Conn:
    """One raw RESP connection. Only the simple replies the commands used here
    return (+OK, +PONG, -ERR, :n) are parsed."""

    def __init__(self, host, port, source, timeout):
        self.source = source or "-"
        self.name = ""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            if source:
                self.sock.bind((source, 0))
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.buf = b""

    def command(self, *args):
        self.sock.sendall(encode(*args))
        return self.read_reply()

    def read_reply(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed by server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        kind, body = line[:1], line[1:].decode(errors="replace")
        if kind == b"-":
            raise RedisError(body)
        if kind in (b"+", b":"):
            return body
        raise ConnectionError("unexpected reply type %r" % kind)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def split_list(value):
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Open (and leak) Redis connections so the exporter's dashboards light up.")
    p.add_argument("--host", default="127.0.0.1", help="Redis host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=6379, help="Redis port (default 6379)")
    p.add_argument("--username", default=os.environ.get("LEAKY_REDIS_USERNAME", ""),
                   help="ACL user for AUTH (default: none)")
    p.add_argument("--password-file", default="",
                   help="file holding the password for AUTH (or env LEAKY_REDIS_PASSWORD)")
    p.add_argument("--leak-sources", default="",
                   help="comma-separated local addresses leaked connections bind to "
                        "(default: let the kernel choose)")
    p.add_argument("--leak-rate", type=float, default=1.0,
                   help="leaked connections opened per second (default 1; 0 leaks nothing)")
    p.add_argument("--leak-names", default="orders-api:pool",
                   help="comma-separated CLIENT SETNAME names for leaked connections, used in "
                        "turn; an empty entry leaves a connection unnamed (default orders-api:pool)")
    p.add_argument("--max-leaked", type=int, default=0,
                   help="stop leaking at this many connections (default 0: until Redis refuses)")
    p.add_argument("--refused-retry-seconds", type=float, default=5.0,
                   help="while Redis refuses new connections, retry this often (default 5)")
    p.add_argument("--pool-sources", default="",
                   help="comma-separated local addresses that each hold a healthy pool")
    p.add_argument("--pool-size", type=int, default=5,
                   help="connections per pool source (default 5; with no --pool-sources, one pool "
                        "from the kernel's choice of address)")
    p.add_argument("--pool-names", default="billing-worker,session-store,reporting",
                   help="comma-separated names of the pools, one per pool source, in turn")
    p.add_argument("--pool-ping-seconds", type=float, default=5.0,
                   help="PING every pool connection this often (default 5)")
    p.add_argument("--duration", type=float, default=0,
                   help="exit (closing everything) after this many seconds (default 0: run until "
                        "SIGINT/SIGTERM)")
    p.add_argument("--timeout", type=float, default=5.0, help="socket timeout (default 5)")
    p.add_argument("--quiet", action="store_true", help="print only the final summary")
    return p.parse_args(argv)


class Leaker:
    def __init__(self, args):
        self.args = args
        self.password = os.environ.get("LEAKY_REDIS_PASSWORD", "")
        if args.password_file:
            with open(args.password_file, encoding="utf-8") as f:
                self.password = f.read().strip()
        self.leaked = []
        self.pool = []
        self.refused = 0
        self.errors = 0
        self.stopping = False
        self.leak_sources = itertools.cycle(split_list(args.leak_sources) or [""])
        # An empty entry in --leak-names means "leave unnamed": split by hand, keep empties.
        names = [n.strip() for n in args.leak_names.split(",")] if args.leak_names else [""]
        self.leak_names = itertools.cycle(names)

    def log(self, msg):
        if not self.args.quiet:
            print(time.strftime("%H:%M:%S"), msg, flush=True)

    def open(self, source, name):
        """Opens one connection and makes sure Redis accepted it: a Redis at
        maxclients accepts the TCP connection, writes the error and closes."""
        conn = Conn(self.args.host, self.args.port, source, self.args.timeout)
        try:
            if self.password:
                if self.args.username:
                    conn.command("AUTH", self.args.username, self.password)
                else:
                    conn.command("AUTH", self.password)
            if name:
                conn.command("CLIENT", "SETNAME", name)
                conn.name = name
            else:
                conn.command("PING")
        except Exception:
            conn.close()
            raise
        return conn

    def try_open(self, source, name):
        try:
            return self.open(source, name)
        except RedisError as e:
            if "max number of clients" in str(e):
                self.refused += 1
                self.log("refused by Redis: %s (refused so far: %d)" % (e, self.refused))
            else:
                self.errors += 1
                self.log("error from Redis: %s" % e)
        except (OSError, ConnectionError) as e:
            self.errors += 1
            self.log("connection failed (source %s): %s" % (source or "-", e))
        return None

    def open_pools(self):
        sources = split_list(self.args.pool_sources)
        if self.args.pool_size <= 0:
            return
        if not sources:
            sources = [""]
        names = split_list(self.args.pool_names) or [""]
        for i, source in enumerate(sources):
            name = names[i % len(names)]
            for _ in range(self.args.pool_size):
                conn = self.try_open(source, name)
                if conn:
                    self.pool.append(conn)
        self.log("pool: %d connections from %s" % (len(self.pool), ", ".join(s or "-" for s in sources)))

    def ping_pool(self):
        alive = []
        for conn in self.pool:
            try:
                conn.command("PING")
                alive.append(conn)
            except (OSError, ConnectionError, RedisError) as e:
                self.errors += 1
                self.log("pool connection from %s lost: %s" % (conn.source, e))
                conn.close()
        self.pool = alive

    def leak_one(self):
        conn = self.try_open(next(self.leak_sources), next(self.leak_names))
        if conn:
            self.leaked.append(conn)
            if len(self.leaked) % 10 == 0:
                self.log("leaked %d connections" % len(self.leaked))
        return conn is not None

    def run(self):
        a = self.args
        start = time.monotonic()
        deadline = start + a.duration if a.duration > 0 else None
        self.open_pools()
        next_leak = start
        next_ping = start + a.pool_ping_seconds
        while not self.stopping:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            capped = a.max_leaked > 0 and len(self.leaked) >= a.max_leaked
            if a.leak_rate > 0 and not capped and now >= next_leak:
                ok = self.leak_one()
                next_leak = now + (1.0 / a.leak_rate if ok else a.refused_retry_seconds)
            if self.pool and now >= next_ping:
                self.ping_pool()
                next_ping = now + a.pool_ping_seconds
            wake = [next_ping if self.pool else now + 1.0]
            if a.leak_rate > 0 and not capped:
                wake.append(next_leak)
            if deadline is not None:
                wake.append(deadline)
            time.sleep(max(0.01, min(min(wake) - time.monotonic(), 1.0)))
        self.close_all()
        return time.monotonic() - start

    def close_all(self):
        for conn in self.leaked + self.pool:
            conn.close()

    def summary(self, elapsed):
        by_source = {}
        for conn in self.leaked:
            by_source[conn.source] = by_source.get(conn.source, 0) + 1
        per = ", ".join("%s=%d" % kv for kv in sorted(by_source.items())) or "none"
        return ("leaky-client: ran %.0fs, leaked %d (%s), pool %d, refused %d, errors %d"
                % (elapsed, len(self.leaked), per, len(self.pool), self.refused, self.errors))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    leaker = Leaker(args)

    def stop(signum, _frame):
        leaker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    leaker.log("leaking to %s:%d at %.2f/s (max %s), pools of %d"
               % (args.host, args.port, args.leak_rate, args.max_leaked or "until refused",
                  args.pool_size))
    elapsed = leaker.run()
    print(leaker.summary(elapsed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
