#!/usr/bin/env python3
"""The longest CLIENT LIST Redis ran, from its own SLOWLOG (durations measured inside Redis, so
the scheduler's noise on a busy machine does not count, unlike a PING's round trip).

Usage: slowlog_max.py PORT reset     # SLOWLOG RESET
       slowlog_max.py PORT           # prints "max_us count p50_us p99_us" of CLIENT LIST entries
The caller sets `slowlog-log-slower-than` (benches/stall.sh: 100 us) and a `slowlog-max-len`
large enough for the window. Stdlib only.
"""
import socket
import sys


def command(s, f, *args):
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    s.sendall(out)
    return read(f)


def read(f):
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b"-"):
        return rest
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if t == b"*":
        return [read(f) for _ in range(max(int(rest), 0))]
    raise ValueError(f"bad reply {line!r}")


def main():
    port = int(sys.argv[1])
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    if len(sys.argv) > 2 and sys.argv[2] == "reset":
        command(s, f, b"SLOWLOG", b"RESET")
        return
    entries = command(s, f, b"SLOWLOG", b"GET", b"-1")
    durations = [
        e[2]
        for e in entries
        if len(e[3]) >= 2 and e[3][0].upper() == b"CLIENT" and e[3][1].upper() == b"LIST"
    ]
    durations.sort()
    q = lambda p: durations[min(len(durations) - 1, int(p * len(durations)))] if durations else 0
    print(f"{max(durations, default=0)} {len(durations)} {q(0.5)} {q(0.99)}")


if __name__ == "__main__":
    main()
