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

/// The set of ASCII letters in a `flags=` value: one pass over the value, then a bit test per
/// letter, where the aggregator used to search the value once per flag it counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlagSet(u64);

impl FlagSet {
    /// Redis' flags are ASCII letters; anything else is ignored.
    pub fn of(flags: &str) -> Self {
        Self(
            flags
                .bytes()
                .filter(u8::is_ascii_alphabetic)
                .fold(0, |m, c| m | Self::bit(c)),
        )
    }

    /// `c & 63` tells all 52 ASCII letters apart ('A'..='Z' are 1..=26, 'a'..='z' 33..=58).
    const fn bit(c: u8) -> u64 {
        1 << (c & 63)
    }

    /// Whether the letter `c` is in the set; false for anything but an ASCII letter.
    pub fn contains(self, c: u8) -> bool {
        c.is_ascii_alphabetic() && self.0 & Self::bit(c) != 0
    }
}

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

/// Checked decimal parse, for the rare 20-digit value that may not fit in a u64.
fn num_checked(field: &'static str, digits: &[u8]) -> Result<u64, ParseError> {
    digits.iter().try_fold(0u64, |n, &b| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(ParseError::BadNumber(field))
    })
}

/// Parses the digits of `b` from `from` up to the next ' ' (or the end); returns the value and
/// where it ended. Hand-rolled because `str::parse` accepts a leading '+', and because this
/// runs for a dozen fields on every line: it reads each digit once, without first looking for
/// the end of the field.
#[inline]
fn number(b: &[u8], from: usize, field: &'static str) -> Result<(u64, usize), ParseError> {
    let mut i = from;
    let mut n: u64 = 0;
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        // Cannot wrap below 20 digits (u64::MAX has 20); 20 are re-read with checks below.
        n = n.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let len = i - from;
    let ends_field = b.get(i).is_none_or(|&c| c == b' ');
    if len == 0 || len > 20 || !ends_field {
        return Err(ParseError::BadNumber(field));
    }
    if len == 20 {
        n = num_checked(field, &b[from..i])?;
    }
    Ok((n, i))
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
const SPACES: u64 = 0x2020_2020_2020_2020;
const EQUALS: u64 = 0x3d3d_3d3d_3d3d_3d3d;

/// High bit set exactly in the zero bytes of `v` (no false positives: after masking to 7 bits
/// the addition cannot carry from one byte into the next).
#[inline]
fn zero_bytes(v: u64) -> u64 {
    !(((v & LOW7) + LOW7) | v) & HIGH
}

/// The eight bytes of `b` from `at`, little-endian, zero-padded past the end: a zero byte is
/// neither ' ' nor '=', so a search never finds a byte that is not there.
#[inline]
fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    match b.get(at..at + 8) {
        Some(s) => w.copy_from_slice(s),
        None => {
            let rest = b.get(at..).unwrap_or_default();
            w[..rest.len()].copy_from_slice(rest);
        }
    }
    u64::from_le_bytes(w)
}

/// The index of the first ' ' in `b` at or after `at`, or `b.len()`. Eight bytes at a time
/// (SWAR): values are a few bytes long, too short for a call to a vectorised search to pay off.
#[inline]
fn field_end(b: &[u8], mut at: usize) -> usize {
    loop {
        let hits = zero_bytes(word(b, at) ^ SPACES);
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
        if at >= b.len() {
            return b.len();
        }
    }
}

/// The index of the '=' ending a key, searching from `at`; `None` if a ' ' or the end of the
/// line comes first.
#[inline]
fn key_end(b: &[u8], mut at: usize) -> Option<usize> {
    while at < b.len() {
        let w = word(b, at);
        let stops = zero_bytes(w ^ EQUALS) | zero_bytes(w ^ SPACES);
        if stops != 0 {
            let i = at + (stops.trailing_zeros() / 8) as usize;
            return (b[i] == b'=').then_some(i);
        }
        at += 8;
    }
    None
}

/// A key of up to seven bytes as the integer [`word`] reads it with the bytes after the key
/// masked off: one integer compare per key instead of a length test and a byte compare.
const fn key(k: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < k.len() {
        v |= (k[i] as u64) << (8 * i);
        i += 1;
    }
    v
}

const K_ID: u64 = key(b"id");
const K_ADDR: u64 = key(b"addr");
const K_LADDR: u64 = key(b"laddr");
const K_NAME: u64 = key(b"name");
const K_AGE: u64 = key(b"age");
const K_IDLE: u64 = key(b"idle");
const K_FLAGS: u64 = key(b"flags");
const K_DB: u64 = key(b"db");
const K_SUB: u64 = key(b"sub");
const K_PSUB: u64 = key(b"psub");
const K_SSUB: u64 = key(b"ssub");
const K_OMEM: u64 = key(b"omem");
const K_TOT_MEM: u64 = key(b"tot-mem");
const K_CMD: u64 = key(b"cmd");
const K_USER: u64 = key(b"user");
const K_RESP: u64 = key(b"resp");

/// The value of a numeric field.
enum Num {
    Id,
    Age,
    Idle,
    Db,
    Sub,
    Psub,
    Ssub,
    Omem,
    TotMem,
    Resp,
}

/// The value of a text field.
enum Text {
    Addr,
    Laddr,
    Name,
    Flags,
    Cmd,
    User,
    LibName,
}

/// What to do with a field, from its key.
enum Field {
    Num(Num, &'static str),
    Text(Text),
    Skip,
}

#[inline]
fn short_key(k: u64) -> Field {
    match k {
        K_ID => Field::Num(Num::Id, "id"),
        K_ADDR => Field::Text(Text::Addr),
        K_LADDR => Field::Text(Text::Laddr),
        K_NAME => Field::Text(Text::Name),
        K_AGE => Field::Num(Num::Age, "age"),
        K_IDLE => Field::Num(Num::Idle, "idle"),
        K_FLAGS => Field::Text(Text::Flags),
        K_DB => Field::Num(Num::Db, "db"),
        K_SUB => Field::Num(Num::Sub, "sub"),
        K_PSUB => Field::Num(Num::Psub, "psub"),
        K_SSUB => Field::Num(Num::Ssub, "ssub"),
        K_OMEM => Field::Num(Num::Omem, "omem"),
        K_TOT_MEM => Field::Num(Num::TotMem, "tot-mem"),
        K_CMD => Field::Text(Text::Cmd),
        K_USER => Field::Text(Text::User),
        K_RESP => Field::Num(Num::Resp, "resp"),
        _ => Field::Skip,
    }
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
    ///
    /// One pass: each field's key is read as one eight-byte word (keys are "key=value" with no
    /// '=' or ' ' in the key; values never hold ' ' because Redis refuses spaces in client
    /// names, but may hold '='), and numbers are parsed while their end is found.
    pub fn parse_into(&mut self, line: &'a str) -> Result<(), ParseError> {
        *self = ClientEntry::default();
        let line = line.strip_suffix('\r').unwrap_or(line);
        let b = line.as_bytes();
        let mut have_addr = false;
        let mut at = 0;
        while at < b.len() {
            if b[at] == b' ' {
                at += 1;
                continue;
            }
            let w = word(b, at);
            let stops = zero_bytes(w ^ EQUALS) | zero_bytes(w ^ SPACES);
            let (field, value) = if stops != 0 {
                let k = (stops.trailing_zeros() / 8) as usize;
                if b[at + k] != b'=' {
                    return Err(ParseError::FieldWithoutValue);
                }
                // k <= 7, so the shift cannot overflow; k == 0 (an empty key) masks to 0,
                // which is no known key.
                (short_key(w & ((1u64 << (8 * k)) - 1)), at + k + 1)
            } else {
                // No '=' in eight bytes: a long key (qbuf-free, argv-mem, lib-name...), or a
                // field without one.
                let eq = key_end(b, at + 8).ok_or(ParseError::FieldWithoutValue)?;
                let field = match &b[at..eq] {
                    b"lib-name" => Field::Text(Text::LibName),
                    _ => Field::Skip,
                };
                (field, eq + 1)
            };
            let end = match field {
                Field::Num(which, name) => {
                    let (n, end) = number(b, value, name)?;
                    *match which {
                        Num::Id => &mut self.id,
                        Num::Age => &mut self.age,
                        Num::Idle => &mut self.idle,
                        Num::Db => &mut self.db,
                        Num::Sub => &mut self.sub,
                        Num::Psub => &mut self.psub,
                        Num::Ssub => &mut self.ssub,
                        Num::Omem => &mut self.omem,
                        Num::TotMem => &mut self.tot_mem,
                        Num::Resp => &mut self.resp,
                    } = Some(n);
                    end
                }
                Field::Text(which) => {
                    let end = field_end(b, value);
                    // Slicing after an ASCII '=' and before an ASCII ' ' (or the end) always
                    // lands on char boundaries.
                    let v = &line[value..end];
                    match which {
                        Text::Addr => {
                            self.addr = v;
                            have_addr = true;
                        }
                        Text::Laddr => self.laddr = Some(v),
                        Text::Name => self.name = Some(v),
                        Text::Flags => self.flags = Some(v),
                        Text::Cmd => self.cmd = Some(v),
                        Text::User => self.user = Some(v),
                        Text::LibName => self.lib_name = Some(v),
                    }
                    end
                }
                Field::Skip => field_end(b, value),
            };
            at = end + 1;
        }
        if !have_addr {
            return Err(ParseError::MissingAddr);
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

    /// The letters of `flags`, for callers that test several.
    pub fn flag_set(&self) -> FlagSet {
        FlagSet::of(self.flags.unwrap_or_default())
    }

    pub fn client_type(&self) -> ClientType {
        self.client_type_with(self.flag_set())
    }

    /// [`client_type`](Self::client_type) with the flags already read.
    pub fn client_type_with(&self, flags: FlagSet) -> ClientType {
        if flags.contains(b'S') {
            ClientType::Replica
        } else if flags.contains(b'M') {
            ClientType::Master
        } else if flags.contains(b'P')
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

/// Iterates the non-empty lines of a CLIENT LIST reply with their parse results.
pub fn lines(reply: &str) -> impl Iterator<Item = Result<ClientEntry<'_>, ParseError>> {
    raw_lines(reply).map(ClientEntry::parse)
}

/// The non-empty lines of a CLIENT LIST reply, unparsed.
pub fn raw_lines(reply: &str) -> impl Iterator<Item = &str> {
    let mut rest = reply;
    // memchr's vectorised search: lines are ~300 bytes, long enough for it to pay off, and
    // `str::split` scans a word at a time (about a tenth of the parse+aggregate time).
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match memchr::memchr(b'\n', rest.as_bytes()) {
            // Splitting at an ASCII '\n' lands on char boundaries.
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = next;
        if !line.is_empty() && line != "\r" {
            return Some(line);
        }
    })
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
    fn flag_set_agrees_with_has_flag() {
        for flags in ["", "N", "bxtUrAe", "SM", "P", "!a", "z Z"] {
            let e = ClientEntry {
                addr: "1.2.3.4:1",
                flags: Some(flags),
                ..ClientEntry::default()
            };
            let set = e.flag_set();
            for c in (b'A'..=b'Z').chain(b'a'..=b'z') {
                assert_eq!(set.contains(c), e.has_flag(c), "{} in {flags:?}", c as char);
            }
        }
        // '!' & 63 is 'a' & 63: only letters may set bits.
        assert!(!FlagSet::of("!").contains(b'a'));
        assert!(!FlagSet::of("a").contains(b'!'));
    }

    #[test]
    fn numbers_at_the_edge_of_u64() {
        let id = |v: &str| ClientEntry::parse(&format!("addr=1.2.3.4:5 id={v}")).map(|e| e.id);
        assert_eq!(id("18446744073709551615"), Ok(Some(u64::MAX)));
        assert_eq!(id("18446744073709551616"), Err(ParseError::BadNumber("id")));
        assert_eq!(id("99999999999999999999"), Err(ParseError::BadNumber("id")));
        assert_eq!(id("00000000000000000007"), Ok(Some(7)));
        assert_eq!(
            id("000000000000000000007"),
            Err(ParseError::BadNumber("id"))
        );
        assert_eq!(
            id("1999999999999999999"),
            Ok(Some(1_999_999_999_999_999_999))
        );
        assert_eq!(id("+1"), Err(ParseError::BadNumber("id")));
        assert_eq!(id(""), Err(ParseError::BadNumber("id")));
        assert_eq!(id("1=2"), Err(ParseError::BadNumber("id")));
    }

    #[test]
    fn keys_longer_than_a_word_and_fields_without_values() {
        let e = ClientEntry::parse("addr=1.2.3.4:5 lib-name=jedis lib-namex=y qbuf-free=0 x==")
            .expect("valid");
        assert_eq!(e.lib_name, Some("jedis"));
        assert_eq!(
            ClientEntry::parse("addr=1.2.3.4:5 qbuf-freeeee"),
            Err(ParseError::FieldWithoutValue)
        );
        assert_eq!(
            ClientEntry::parse("addr=1.2.3.4:5 ab cd=1"),
            Err(ParseError::FieldWithoutValue)
        );
        let e = ClientEntry::parse("  addr=1.2.3.4:5   =x name=a=b  ").expect("valid");
        assert_eq!(e.name, Some("a=b"));
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
