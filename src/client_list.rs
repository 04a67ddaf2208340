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
        let line = line.strip_suffix('\r').unwrap_or(line);
        let bytes = line.as_bytes();
        let mut e = ClientEntry::default();
        let mut have_addr = false;
        let mut i = 0;
        // Byte scanning rather than `split`: this runs for ~30 fields on each of up to 65,000
        // lines per poll. Keys never hold '=' or ' '; values never hold ' ' (Redis refuses
        // spaces in client names) but may hold '=', so a field is "key=" up to the next space.
        while i < bytes.len() {
            if bytes[i] == b' ' {
                i += 1;
                continue;
            }
            let start = i;
            let mut eq = usize::MAX;
            while i < bytes.len() && bytes[i] != b' ' {
                if eq == usize::MAX && bytes[i] == b'=' {
                    eq = i;
                }
                i += 1;
            }
            if eq == usize::MAX {
                return Err(ParseError::FieldWithoutValue);
            }
            // Slicing at ASCII '=' and ' ' always lands on char boundaries.
            let key = &line[start..eq];
            let value = &line[eq + 1..i];
            match key {
                "id" => e.id = Some(num("id", value)?),
                "addr" => {
                    e.addr = value;
                    have_addr = true;
                }
                "laddr" => e.laddr = Some(value),
                "name" => e.name = Some(value),
                "age" => e.age = Some(num("age", value)?),
                "idle" => e.idle = Some(num("idle", value)?),
                "flags" => e.flags = Some(value),
                "db" => e.db = Some(num("db", value)?),
                "sub" => e.sub = Some(num("sub", value)?),
                "psub" => e.psub = Some(num("psub", value)?),
                "ssub" => e.ssub = Some(num("ssub", value)?),
                "omem" => e.omem = Some(num("omem", value)?),
                "tot-mem" => e.tot_mem = Some(num("tot-mem", value)?),
                "cmd" => e.cmd = Some(value),
                "user" => e.user = Some(value),
                "resp" => e.resp = Some(num("resp", value)?),
                "lib-name" => e.lib_name = Some(value),
                _ => {}
            }
        }
        if !have_addr {
            return Err(ParseError::MissingAddr);
        }
        Ok(e)
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
            || self.sub.unwrap_or(0) + self.psub.unwrap_or(0) + self.ssub.unwrap_or(0) > 0
        {
            ClientType::Pubsub
        } else {
            ClientType::Normal
        }
    }
}

/// Iterates the non-empty lines of a CLIENT LIST reply with their parse results.
pub fn lines(reply: &str) -> impl Iterator<Item = Result<ClientEntry<'_>, ParseError>> {
    reply
        .split('\n')
        .filter(|l| !l.is_empty() && *l != "\r")
        .map(ClientEntry::parse)
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
