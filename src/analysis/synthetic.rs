//! Synthetic CLIENT LIST replies shaped like the real Redis 7 captures (tests/fixtures), for the
//! benchmarks, the allocation check and load tests that need more clients than one process can
//! hold here. Deterministic: the same arguments give the same reply.

use std::fmt::Write;

/// A reply of `lines` clients spread over `sources` source IPs and `services` client names.
/// About one in ten is unnamed, one in fifty a subscriber, one in a hundred blocked.
pub fn client_list(lines: usize, sources: usize, services: usize) -> String {
    let mut out = String::with_capacity(lines * 300);
    let sources = sources.max(1);
    let services = services.max(1);
    for i in 0..lines {
        let ip = i % sources;
        let svc = i % services;
        let name = if i % 10 == 9 {
            String::new()
        } else {
            format!("svc-{svc}:pool-{}", i % 16)
        };
        let (flags, sub, cmd) = match i % 100 {
            0 => ("b", 0, "blpop"),
            1 | 51 => ("P", 1, "subscribe"),
            _ if i % 7 == 0 => ("N", 0, "NULL"),
            _ => ("N", 0, "get"),
        };
        let idle = (i * 37) % 7200;
        let age = idle + (i % 600);
        let _ = writeln!(
            out,
            "id={id} addr=10.{a}.{b}.{c}:{port} laddr=10.0.0.1:6379 fd={fd} name={name} age={age} idle={idle} flags={flags} db=0 sub={sub} psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem=0 tot-mem=22272 events=r cmd={cmd} user=default redir=-1 resp=2 lib-name=redis-py lib-ver=5.0.1",
            id = i + 10,
            a = (ip >> 16) & 255,
            b = (ip >> 8) & 255,
            c = ip & 255,
            port = 30000 + (i % 30000),
            fd = i + 20,
        );
    }
    out
}
