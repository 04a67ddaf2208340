//! The CLIENT LIST line parser.
//!
//! It borrows every field from the reply (no allocation per line): the reply of a server with
//! 50,000 clients is about 20 MB, and the exporter must stay cheap exactly when Redis is in
//! trouble. It knows the fields of Redis 2.8 to 7.x and Valkey; a field it does not know is
//! skipped, and a field the server did not send stays `None` rather than becoming zero.

use thiserror::Error;

/// Why a line was rejected. The aggregator counts these and skips the line.
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
pub enum ParseError {
    #[error("field without '=' in CLIENT LIST line")]
    FieldWithoutValue,
    #[error("non-numeric value for numeric field `{0}`")]
    BadNumber(&'static str),
    #[error("CLIENT LIST line has no addr field")]
    MissingAddr,
}

/// The kind of connection, as Redis' flags say it. Ordered for use as an array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Normal = 0,
    Pubsub = 1,
    Replica = 2,
    Master = 3,
}

impl ClientType {
    pub const ALL: [ClientType; 4] = [Self::Normal, Self::Pubsub, Self::Replica, Self::Master];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Pubsub => "pubsub",
            Self::Replica => "replica",
            Self::Master => "master",
        }
    }
}

/// Connection states worth counting, from single-letter flags.
/// Each entry: (flag letter, label value).
pub const FLAGS: [(u8, &str); 7] = [
    (b'b', "blocked"),
    (b'x', "multi"),
    (b't', "tracking"),
    (b'U', "unix_socket"),
    (b'r', "readonly"),
    (b'A', "close_asap"),
    (b'e', "no_evict"),
];

/// One CLIENT LIST line, borrowed from the reply.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientEntry<'a> {
    pub id: Option<u64>,
    pub addr: &'a str,
    pub laddr: Option<&'a str>,
    pub name: Option<&'a str>,
    pub age: Option<u64>,
    pub idle: Option<u64>,
    pub flags: Option<&'a str>,
    pub db: Option<u64>,
    pub sub: Option<u64>,
    pub psub: Option<u64>,
    pub ssub: Option<u64>,
    pub omem: Option<u64>,
    pub tot_mem: Option<u64>,
    pub cmd: Option<&'a str>,
    pub user: Option<&'a str>,
    pub resp: Option<u64>,
    pub lib_name: Option<&'a str>,
}

fn num(field: &'static str, value: &str) -> Result<u64, ParseError> {
    // Hand-rolled because `str::parse` accepts a leading '+', and because this runs for a dozen
    // fields on every line.
    if value.is_empty() || value.len() > 20 {
        return Err(ParseError::BadNumber(field));
    }
    let mut n: u64 = 0;
    for b in value.bytes() {
        if !b.is_ascii_digit() {
            return Err(ParseError::BadNumber(field));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(ParseError::BadNumber(field))?;
    }
    Ok(n)
}

impl<'a> ClientEntry<'a> {
    /// Parses one line (without its line terminator; a trailing '\r' is tolerated).
    pub fn parse(line: &'a str) -> Result<Self, ParseError> {
        let mut e = ClientEntry::default();
        e.parse_into(line)?;
        Ok(e)
    }

    /// Like [`parse`](Self::parse), into an existing entry (reset first): the hot loop reuses one
    /// entry instead of moving a fresh one out of every call.
    pub fn parse_into(&mut self, line: &'a str) -> Result<(), ParseError> {
        *self = ClientEntry::default();
        let line = line.strip_suffix('\r').unwrap_or(line);
        let e = self;
        let mut have_addr = false;
        let mut start = 0;
        for_each_space(line.as_bytes(), |end| {
            let from = std::mem::replace(&mut start, end + 1);
            e.field(line, from, end, &mut have_addr)
        })?;
        e.field(line, start, line.len(), &mut have_addr)?;
        if !have_addr {
            return Err(ParseError::MissingAddr);
        }
        Ok(())
    }

    /// Takes the field `line[from..end]`: "key=value", where keys never hold '=' or ' ' and
    /// values never hold ' ' (Redis refuses spaces in client names) but may hold '='.
    fn field(
        &mut self,
        line: &'a str,
        from: usize,
        end: usize,
        have_addr: &mut bool,
    ) -> Result<(), ParseError> {
        let field = &line.as_bytes()[from..end];
        if field.is_empty() {
            return Ok(());
        }
        // Keys are short: a plain loop beats a vectorised search here.
        let eq = from
            + field
                .iter()
                .position(|&b| b == b'=')
                .ok_or(ParseError::FieldWithoutValue)?;
        // Slicing at ASCII '=' and ' ' always lands on char boundaries.
        let key = &line[from..eq];
        let value = &line[eq + 1..end];
        let e = self;
        // Byte-array patterns compile to inline compares; `&str` patterns call memcmp.
        match key.as_bytes() {
            b"id" => e.id = Some(num("id", value)?),
            b"addr" => {
                e.addr = value;
                *have_addr = true;
            }
            b"laddr" => e.laddr = Some(value),
            b"name" => e.name = Some(value),
            b"age" => e.age = Some(num("age", value)?),
            b"idle" => e.idle = Some(num("idle", value)?),
            b"flags" => e.flags = Some(value),
            b"db" => e.db = Some(num("db", value)?),
            b"sub" => e.sub = Some(num("sub", value)?),
            b"psub" => e.psub = Some(num("psub", value)?),
            b"ssub" => e.ssub = Some(num("ssub", value)?),
            b"omem" => e.omem = Some(num("omem", value)?),
            b"tot-mem" => e.tot_mem = Some(num("tot-mem", value)?),
            b"cmd" => e.cmd = Some(value),
            b"user" => e.user = Some(value),
            b"resp" => e.resp = Some(num("resp", value)?),
            b"lib-name" => e.lib_name = Some(value),
            _ => {}
        }
        Ok(())
    }

    /// The peer's IP without the port: `127.0.0.1`, `::1` (brackets dropped), or `unix` for a
    /// unix-socket client.
    pub fn source_ip(&self) -> &'a str {
        let addr = self.addr;
        if addr.starts_with('/') || self.has_flag(b'U') {
            return "unix";
        }
        if let Some(rest) = addr.strip_prefix('[') {
            if let Some((ip, _port)) = rest.split_once(']') {
                return ip;
            }
        }
        // Old servers print IPv6 unbracketed (`::1:6379`): the port is still after the last ':'.
        match addr.rsplit_once(':') {
            Some((ip, _port)) if !ip.is_empty() => ip,
            _ => addr,
        }
    }

    pub fn has_flag(&self, flag: u8) -> bool {
        self.flags.is_some_and(|f| f.as_bytes().contains(&flag))
    }

    pub fn client_type(&self) -> ClientType {
        if self.has_flag(b'S') {
            ClientType::Replica
        } else if self.has_flag(b'M') {
            ClientType::Master
        } else if self.has_flag(b'P')
            || [self.sub, self.psub, self.ssub]
                .iter()
                .any(|n| n.unwrap_or(0) > 0)
        {
            ClientType::Pubsub
        } else {
            ClientType::Normal
        }
    }
}

/// Calls `f` with the index of every ' ' in `bytes`, in order. Eight bytes at a time (SWAR):
/// the fields of a CLIENT LIST line are ~10 bytes apart, too close for a per-match call to a
/// vectorised search to pay off, and this is the hottest loop of the exporter.
fn for_each_space(
    bytes: &[u8],
    mut f: impl FnMut(usize) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    const SPACES: u64 = 0x2020_2020_2020_2020;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word) ^ SPACES;
        // High bit set exactly in the bytes of `v` that are zero, i.e. the spaces (no false
        // positives: the addition cannot carry across bytes after masking to 7 bits).
        let mut hits = !(((v & LOW7) + LOW7) | v) & HIGH;
        while hits != 0 {
            f(base + (hits.trailing_zeros() / 8) as usize)?;
            hits &= hits - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == b' ' {
            f(base + i)?;
        }
    }
    Ok(())
}

/// Iterates the non-empty lines of a CLIENT LIST reply with their parse results.
pub fn lines(reply: &str) -> impl Iterator<Item = Result<ClientEntry<'_>, ParseError>> {
    raw_lines(reply).map(ClientEntry::parse)
}

/// The non-empty lines of a CLIENT LIST reply, unparsed.
pub fn raw_lines(reply: &str) -> impl Iterator<Item = &str> {
    reply.split('\n').filter(|l| !l.is_empty() && *l != "\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_redis7_line() {
        let line = "id=7 addr=127.0.0.1:49532 laddr=127.0.0.1:16379 fd=14 name=order-service:pool-3 age=2 idle=5 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=20474 argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem=0 tot-mem=22272 events=r cmd=client|setname user=default redir=-1 resp=2";
        let e = ClientEntry::parse(line).expect("valid line");
        assert_eq!(e.id, Some(7));
        assert_eq!(e.source_ip(), "127.0.0.1");
        assert_eq!(e.name, Some("order-service:pool-3"));
        assert_eq!(e.idle, Some(5));
        assert_eq!(e.age, Some(2));
        assert_eq!(e.tot_mem, Some(22272));
        assert_eq!(e.cmd, Some("client|setname"));
        assert_eq!(e.user, Some("default"));
        assert_eq!(e.client_type(), ClientType::Normal);
    }

    #[test]
    fn old_server_fields_are_absent_not_zero() {
        // Redis 2.8: no user, no tot-mem, no ssub, no resp.
        let line = "addr=10.0.0.5:5000 fd=5 name= age=10 idle=3 flags=N db=0 sub=0 psub=0 multi=-1 qbuf=0 qbuf-free=32768 obl=0 oll=0 omem=0 events=r cmd=get";
        let e = ClientEntry::parse(line).expect("valid line");
        assert_eq!(e.user, None);
        assert_eq!(e.tot_mem, None);
        assert_eq!(e.ssub, None);
        assert_eq!(e.id, None);
        assert_eq!(e.name, Some(""));
        assert_eq!(e.source_ip(), "10.0.0.5");
    }

    #[test]
    fn addresses_of_every_shape() {
        let ip = |addr: &str, flags: &str| {
            let line = format!("addr={addr} flags={flags}");
            ClientEntry::parse(&line).map(|e| e.source_ip().to_string())
        };
        assert_eq!(ip("[::1]:41114", "N").as_deref(), Ok("::1"));
        assert_eq!(ip("::1:41114", "N").as_deref(), Ok("::1"));
        assert_eq!(ip("/run/redis/redis.sock:0", "U").as_deref(), Ok("unix"));
        assert_eq!(ip("/tmp/r.sock:0", "N").as_deref(), Ok("unix"));
        assert_eq!(ip("192.168.1.20:6000", "N").as_deref(), Ok("192.168.1.20"));
    }

    #[test]
    fn types_from_flags() {
        let ty = |flags: &str| {
            ClientEntry::parse(&format!("addr=1.2.3.4:1 flags={flags}")).map(|e| e.client_type())
        };
        assert_eq!(ty("S"), Ok(ClientType::Replica));
        assert_eq!(ty("M"), Ok(ClientType::Master));
        assert_eq!(ty("P"), Ok(ClientType::Pubsub));
        assert_eq!(ty("b"), Ok(ClientType::Normal));
        let e = ClientEntry::parse("addr=1.2.3.4:1 flags=N sub=0 psub=0 ssub=2").expect("valid");
        assert_eq!(e.client_type(), ClientType::Pubsub);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert_eq!(
            ClientEntry::parse("id=1 addr=1.2.3.4:5 garbage"),
            Err(ParseError::FieldWithoutValue)
        );
        assert_eq!(
            ClientEntry::parse("id=x addr=1.2.3.4:5"),
            Err(ParseError::BadNumber("id"))
        );
        assert_eq!(
            ClientEntry::parse("id=1 idle=-3 addr=1.2.3.4:5"),
            Err(ParseError::BadNumber("idle"))
        );
        assert_eq!(
            ClientEntry::parse("id=1 name=x"),
            Err(ParseError::MissingAddr)
        );
        assert_eq!(
            ClientEntry::parse("id=99999999999999999999999 addr=1.2.3.4:5"),
            Err(ParseError::BadNumber("id"))
        );
    }

    #[test]
    fn superuser_and_crlf() {
        let e = ClientEntry::parse("id=3 addr=127.0.0.1:16379 flags=M user=(superuser) cmd=ping\r")
            .expect("valid");
        assert_eq!(e.user, Some("(superuser)"));
        assert_eq!(e.cmd, Some("ping"));
        assert_eq!(e.client_type(), ClientType::Master);
    }
}
