#!/usr/bin/env python3
"""Hold N idle client connections to a Redis server, from many loopback source addresses.

Usage: load_clients.py PORT N [--sources 200] [--name app] [--first-source 0]
Prints "ready N" when every connection is open, then holds them until killed (SIGTERM).
Each connection sets a client name like `app-17:pool` (one name per source address), so the
exporters see a realistic spread of sources and names. Stdlib only.
"""
import argparse
import resource
import signal
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--sources", type=int, default=200)
    ap.add_argument("--name", default="app")
    # Several processes share one load (one process holds at most ~19,980 sockets): each takes
    # its own range of source addresses.
    ap.add_argument("--first-source", type=int, default=0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.n + 16 > hard:
        sys.exit(f"need {args.n + 16} file descriptors, the hard limit is {hard}")
    conns = []
    for i in range(args.n):
        src = i % args.sources
        a = args.first_source + src
        ip = f"127.0.{1 + a // 250}.{1 + a % 250}"
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((ip, 0))
        s.connect(("127.0.0.1", args.port))
        name = f"{args.name}-{src}:pool"
        s.sendall(f"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n${len(name)}\r\n{name}\r\n".encode())
        reply = s.recv(64)
        if not reply.startswith(b"+OK"):
            sys.exit(f"connection {i} from {ip}: {reply!r}")
        conns.append(s)
    print(f"ready {len(conns)}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
