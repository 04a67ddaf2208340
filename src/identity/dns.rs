//! Reverse DNS (PTR) through the configured resolver (`[identity.dns] resolver`), for the
//! addresses no other source names: `host orders-worker-3.prod`.
//!
//! Our own few lines of DNS, not a resolver crate: one question type (PTR) over UDP to one
//! configured server, no search domains, no recursion of our own, no system configuration read;
//! hickory-resolver would bring ~40 crates for that. The answer is untrusted: every length and
//! name compression pointer is checked against the packet (at most 512 bytes, 16 pointers), and
//! a name is kept only when it is a host name (letters, digits, `-`, `_`, `.`; at most 253
//! bytes); anything else is no name.
//!
//! Which addresses: the pollers hand the hub the addresses that top their targets' workload
//! dimension unnamed (`IdentityHub::want_names`), at most `max_entries` waiting. Answers, names
//! and "no name" alike, are cached for `ttl_seconds`; at most `max_lookups_per_minute` queries
//! are sent in any minute (`Budget`).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The largest UDP answer read (the classic DNS limit; no EDNS0 is asked for).
const MAX_PACKET: usize = 512;
/// Compression pointers followed in one name at most.
const MAX_POINTERS: usize = 16;
const TYPE_PTR: u16 = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("socket: {0}")]
    Io(String),
    #[error("malformed answer")]
    Malformed,
}

/// `4.3.2.1.in-addr.arpa` / the nibbles of an IPv6 address under `ip6.arpa`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// A PTR question for `name` with the id `id`, recursion desired.
pub fn query_packet(id: u16, name: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(name.len() + 18);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&TYPE_PTR.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p
}

/// Reads the (possibly compressed) name at `at`; returns it and the offset after it in place.
fn read_name(p: &[u8], mut at: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *p.get(at).ok_or(DnsError::Malformed)? as usize;
        match len {
            0 => {
                return Ok((name, end.unwrap_or(at + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let lo = *p.get(at + 1).ok_or(DnsError::Malformed)? as usize;
                jumps += 1;
                if jumps > MAX_POINTERS {
                    return Err(DnsError::Malformed);
                }
                end.get_or_insert(at + 2);
                at = ((l & 0x3f) << 8) | lo;
            }
            l if l <= 63 => {
                let label = p.get(at + 1..at + 1 + l).ok_or(DnsError::Malformed)?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(&String::from_utf8_lossy(label));
                if name.len() > 253 {
                    return Err(DnsError::Malformed);
                }
                at += 1 + l;
            }
            _ => return Err(DnsError::Malformed),
        }
    }
}

/// The PTR name of an answer to our question `id`; `None` for a negative answer (any error
/// code, no PTR record, or a name that is not a host name).
pub fn parse_answer(p: &[u8], id: u16) -> Result<Option<String>, DnsError> {
    if p.len() < 12 || p[0..2] != id.to_be_bytes() || p[2] & 0x80 == 0 {
        return Err(DnsError::Malformed);
    }
    if p[3] & 0x0f != 0 {
        return Ok(None);
    }
    let count = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]) as usize;
    let (questions, answers) = (count(4), count(6));
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(p, at)?.1 + 4;
    }
    for _ in 0..answers {
        let (_, after) = read_name(p, at)?;
        let head = p.get(after..after + 10).ok_or(DnsError::Malformed)?;
        let ty = u16::from_be_bytes([head[0], head[1]]);
        let len = u16::from_be_bytes([head[8], head[9]]) as usize;
        let data = after + 10;
        if data + len > p.len() {
            return Err(DnsError::Malformed);
        }
        if ty == TYPE_PTR {
            let (name, _) = read_name(p, data)?;
            return Ok(host_name(&name));
        }
        at = data + len;
    }
    Ok(None)
}

/// `name` when it is a host name (without its final dot), else `None`.
fn host_name(name: &str) -> Option<String> {
    let n = name.trim_end_matches('.');
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| n.to_ascii_lowercase())
}

/// One PTR lookup of `ip` at `resolver`, within `timeout`.
pub async fn lookup(
    resolver: SocketAddr,
    ip: IpAddr,
    timeout: Duration,
) -> Result<Option<String>, DnsError> {
    let bind: SocketAddr = if resolver.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let io = |e: std::io::Error| DnsError::Io(e.to_string());
    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(io)?;
    sock.connect(resolver).await.map_err(io)?;
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).map_err(|e| DnsError::Io(e.to_string()))?;
    let id = u16::from_be_bytes(id);
    sock.send(&query_packet(id, &reverse_name(ip)))
        .await
        .map_err(io)?;
    let mut buf = [0u8; MAX_PACKET];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| DnsError::Timeout(timeout))?
            .map_err(io)?;
        // An answer to another id (a late one, or spoofed) is skipped, not trusted.
        match parse_answer(&buf[..n], id) {
            Err(DnsError::Malformed) if buf[..2] != id.to_be_bytes() => continue,
            r => return r,
        }
    }
}

/// At most `per_minute` lookups in any 60 s.
#[derive(Debug)]
pub struct Budget {
    per_minute: usize,
    sent: VecDeque<Instant>,
}

impl Budget {
    pub fn new(per_minute: u32) -> Budget {
        Budget {
            per_minute: per_minute as usize,
            sent: VecDeque::new(),
        }
    }

    /// Takes one lookup from the budget when there is one left at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.per_minute {
            return false;
        }
        self.sent.push_back(now);
        true
    }
}

/// Answers by address, each until it expires.
#[derive(Debug, Default)]
pub struct Cache {
    entries: HashMap<IpAddr, (Option<String>, Instant)>,
}

impl Cache {
    /// Whether `ip` has an answer that has not expired at `now`.
    pub fn fresh(&self, ip: &IpAddr, now: Instant) -> bool {
        self.entries.get(ip).is_some_and(|(_, until)| *until > now)
    }

    pub fn insert(&mut self, ip: IpAddr, name: Option<String>, until: Instant, max: usize) {
        if self.entries.len() >= max && !self.entries.contains_key(&ip) {
            let now = Instant::now();
            self.entries.retain(|_, (_, u)| *u > now);
            if self.entries.len() >= max {
                return;
            }
        }
        self.entries.insert(ip, (name, until));
    }

    /// Address → `host NAME` for the answers that named a host (expired ones kept until
    /// replaced: a name does not vanish because the resolver is slow).
    pub fn names(&self) -> HashMap<IpAddr, String> {
        self.entries
            .iter()
            .filter_map(|(ip, (n, _))| n.as_ref().map(|n| (*ip, bounded_host(n))))
            .collect()
    }
}

fn bounded_host(n: &str) -> String {
    crate::redis::label::bound(&format!("host {n}")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("127.0.6.5".parse().expect("ip")),
            "5.6.0.127.in-addr.arpa"
        );
        let v6 = reverse_name("2001:db8::1".parse().expect("ip"));
        assert!(v6.starts_with("1.0.0.0.") && v6.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa"));
    }

    /// dnsmasq 2.90's answer to `5.6.0.127.in-addr.arpa PTR`, and its REFUSED.
    #[test]
    fn parses_a_real_answer_and_rejects_junk() {
        let hex = "1234858000010001000000000135013601300331323707696e2d61646472046172706100000c0001c00c000c00010000000000160f6f72646572732d776f726b65722d330470726f6400";
        let p: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        assert_eq!(
            parse_answer(&p, 0x1234),
            Ok(Some("orders-worker-3.prod".into()))
        );
        assert_eq!(parse_answer(&p, 0x1235), Err(DnsError::Malformed));
        let refused =
            "1234818500010000000000000139013601300331323707696e2d61646472046172706100000c0001";
        let r: Vec<u8> = (0..refused.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&refused[i..i + 2], 16).expect("hex"))
            .collect();
        assert_eq!(parse_answer(&r, 0x1234), Ok(None));
        // Cut anywhere: never a panic, never a name.
        for n in 0..p.len() {
            assert!(parse_answer(&p[..n], 0x1234).is_err(), "{n}");
        }
        // A pointer loop.
        let mut l = p.clone();
        let at = l.len() - 22;
        l[at] = 0xc0;
        l[at + 1] = at as u8;
        assert!(parse_answer(&l, 0x1234).is_err());
        assert_eq!(host_name("a b.example"), None);
        assert_eq!(host_name("x\u{1b}[31m"), None);
    }

    #[test]
    fn budget_per_minute() {
        let mut b = Budget::new(2);
        let t = Instant::now();
        assert!(b.take(t) && b.take(t));
        assert!(!b.take(t + Duration::from_secs(59)));
        assert!(b.take(t + Duration::from_secs(60)));
    }
}
