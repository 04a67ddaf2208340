#!/usr/bin/env python3
"""A RESP2 server that answers like a Redis holding N clients, for end-to-end measurement above the
machine's open-files limit (one real redis-server here holds at most ~19,968 clients).

CLIENT LIST returns a synthetic reply built once at start in the format of src/analysis/synthetic.rs
(Redis 7 lines, 20 clients per source, 50 names), so the server's own time per call is only the
socket write; `CLIENT LIST ID id ...` returns those ids' lines (ids 10 .. CLIENTS + 9), and
`CLIENT ID` an id above them all, as the chunked walk (src/redis/chunked.rs) needs. INFO and CONFIG
GET answer what the exporter reads; anything else is +OK.

    python3 benches/fake_redis.py PORT CLIENTS      # prints "ready <bytes of CLIENT LIST>"
"""
import asyncio
import sys


def client_list(lines: int, sources: int, services: int) -> bytes:
    return b"".join(client_lines(lines, sources, services))


def client_lines(lines: int, sources: int, services: int) -> list:
    out = []
    for i in range(lines):
        ip = i % sources
        svc = i % services
        name = "" if i % 10 == 9 else f"svc-{svc}:pool-{i % 16}"
        m = i % 100
        if m == 0:
            flags, sub, cmd = "b", 0, "blpop"
        elif m in (1, 51):
            flags, sub, cmd = "P", 1, "subscribe"
        elif i % 7 == 0:
            flags, sub, cmd = "N", 0, "NULL"
        else:
            flags, sub, cmd = "N", 0, "get"
        idle = (i * 37) % 7200
        age = idle + (i % 600)
        out.append(
            f"id={i + 10} addr=10.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}:{30000 + i % 30000} "
            f"laddr=10.0.0.1:6379 fd={i + 20} name={name} age={age} idle={idle} flags={flags} db=0 "
            f"sub={sub} psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=1024 "
            f"rbp=0 obl=0 oll=0 omem=0 tot-mem=22272 events=r cmd={cmd} user=default redir=-1 "
            f"resp=2 lib-name=redis-py lib-ver=5.0.1\n".encode()
        )
    return out


def bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


def array(items) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(bulk(i) for i in items)


async def read_command(r: asyncio.StreamReader):
    head = await r.readline()
    if not head:
        return None
    if not head.startswith(b"*"):
        return head.split()
    args = []
    for _ in range(int(head[1:])):
        n = int((await r.readline())[1:])
        args.append((await r.readexactly(n + 2))[:-2])
    return args


def main() -> None:
    port, clients = int(sys.argv[1]), int(sys.argv[2])
    by_id = client_lines(clients, max(clients // 20, 1), 50)
    listing = bulk(b"".join(by_id))

    def listing_of(ids) -> bytes:
        out = []
        for a in ids:
            i = int(a) - 10
            if 0 <= i < len(by_id):
                out.append(by_id[i])
        return bulk(b"".join(out))

    config = {b"maxclients": b"65504", b"timeout": b"0", b"tcp-keepalive": b"300"}
    stats = {"received": clients}

    def info() -> bytes:
        stats["received"] += 1
        return bulk(
            (
                "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nprocess_id:1\r\n"
                "uptime_in_seconds:1000\r\n# Clients\r\n"
                f"connected_clients:{clients}\r\nmaxclients:65504\r\nblocked_clients:{clients // 100}\r\n"
                "# Memory\r\nused_memory:100000000\r\n# Stats\r\n"
                f"total_connections_received:{stats['received']}\r\nrejected_connections:0\r\n"
                "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"
            ).encode()
        )

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while (args := await read_command(r)) is not None:
                name = b" ".join(a.upper() for a in args[:2])
                if name.startswith(b"CLIENT LIST") and len(args) > 3 and args[2].upper() == b"ID":
                    w.write(listing_of(args[3:]))
                elif name.startswith(b"CLIENT LIST"):
                    w.write(listing)
                elif name == b"CLIENT ID":
                    w.write(b":%d\r\n" % (clients + 10))
                elif name.startswith(b"INFO"):
                    w.write(info())
                elif name.startswith(b"CONFIG GET"):
                    pairs = []
                    for p in args[2:]:
                        if p.lower() in config:
                            pairs += [p.lower(), config[p.lower()]]
                    w.write(array(pairs))
                elif name.startswith(b"PING"):
                    w.write(b"+PONG\r\n")
                else:
                    w.write(b"+OK\r\n")
                await w.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            w.close()

    async def run() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        print(f"ready {len(listing)}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
