#!/usr/bin/env python3
"""Measure Redis command latency from a held connection: PING in a tight loop for SECONDS.

Usage: latency_probe.py PORT SECONDS  ->  prints "p50_ms p99_ms max_ms samples"
SIGTERM ends the measurement early (and still prints).
CLIENT LIST runs on Redis' main thread, so a poll shows up as the max (and p99) here.
"""
import signal
import socket
import sys
import time

stop = False


def _stop(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, _stop)

port, seconds = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
samples = []
end = time.monotonic() + seconds
while time.monotonic() < end and not stop:
    t = time.perf_counter()
    s.sendall(b"PING\r\n")
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(64)
    samples.append((time.perf_counter() - t) * 1000)
    time.sleep(0.001)
samples.sort()
q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
print(f"{q(0.5):.3f} {q(0.99):.3f} {samples[-1]:.3f} {len(samples)}")
