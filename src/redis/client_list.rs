//! The CLIENT LIST line parser.
//!
//! It borrows every field from the reply (no allocation per line): the reply of a server with
//! 50,000 clients is about 20 MB, and the exporter must stay cheap exactly when Redis is in
//! trouble. It knows the fields of Redis 2.8 to 7.x and Valkey; a field it does not know is
//! skipped, and a field the server did not send stays `None` rather than becoming zero.

use thiserror::Error;

/// The name the exporter gives its own connection, so it is recognisable in CLIENT LIST.
pub const CLIENT_NAME: &str = "redis-clients-exporter";

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

/// Connection states worth counting, from single-letter flags. Ordered for use as an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Blocked = 0,
    Multi = 1,
    Tracking = 2,
    UnixSocket = 3,
    Readonly = 4,
    CloseAsap = 5,
    NoEvict = 6,
}

impl Flag {
    pub const ALL: [Flag; 7] = [
        Self::Blocked,
        Self::Multi,
        Self::Tracking,
        Self::UnixSocket,
        Self::Readonly,
        Self::CloseAsap,
        Self::NoEvict,
    ];

    /// The letter in CLIENT LIST's `flags=`.
    pub fn letter(self) -> u8 {
        match self {
            Self::Blocked => b'b',
            Self::Multi => b'x',
            Self::Tracking => b't',
            Self::UnixSocket => b'U',
            Self::Readonly => b'r',
            Self::CloseAsap => b'A',
            Self::NoEvict => b'e',
        }
    }

    /// The `flag` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::Multi => "multi",
            Self::Tracking => "tracking",
            Self::UnixSocket => "unix_socket",
            Self::Readonly => "readonly",
            Self::CloseAsap => "close_asap",
            Self::NoEvict => "no_evict",
        }
    }
}

/// A count per [`ClientType`], indexed by the type itself (`by_type[ClientType::Pubsub]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerType([u64; ClientType::ALL.len()]);

impl PerType {
    /// Every count, in the order of the kinds' `ALL` (for merging two sets of counts).
    pub fn counts(&self) -> &[u64] {
        &self.0
    }
    pub fn counts_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

impl std::ops::Index<ClientType> for PerType {
    type Output = u64;
    fn index(&self, t: ClientType) -> &u64 {
        &self.0[t as usize]
    }
}

impl std::ops::IndexMut<ClientType> for PerType {
    fn index_mut(&mut self, t: ClientType) -> &mut u64 {
        &mut self.0[t as usize]
    }
}

/// A count per [`Flag`], indexed by the flag itself (`by_flag[Flag::Blocked]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerFlag([u64; Flag::ALL.len()]);

impl PerFlag {
    /// Every count, in the order of the kinds' `ALL` (for merging two sets of counts).
    pub fn counts(&self) -> &[u64] {
        &self.0
    }
    pub fn counts_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

impl std::ops::Index<Flag> for PerFlag {
    type Output = u64;
    fn index(&self, f: Flag) -> &u64 {
        &self.0[f as usize]
    }
}

impl std::ops::IndexMut<Flag> for PerFlag {
    fn index_mut(&mut self, f: Flag) -> &mut u64 {
        &mut self.0[f as usize]
    }
}

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
    /// `lib-ver` (CLIENT SETINFO, Redis 7.2+ / Valkey).
    pub lib_ver: Option<&'a str>,
    /// Query buffer length, argument and MULTI queue memory (`qbuf`, `argv-mem`, `multi-mem`).
    pub qbuf: Option<u64>,
    pub argv_mem: Option<u64>,
    pub multi_mem: Option<u64>,
    /// Output static buffer length and reply list length (`obl`, `oll`).
    pub obl: Option<u64>,
    pub oll: Option<u64>,
    /// Keys WATCHed (`watch`, Redis 7.4+ / Valkey).
    pub watch: Option<u64>,
    /// Totals of the connection's life (`tot-cmds`, `tot-net-in`, `tot-net-out`: Redis 8.0+,
    /// Valkey 8.0+).
    pub tot_cmds: Option<u64>,
    pub tot_net_in: Option<u64>,
    pub tot_net_out: Option<u64>,
    /// File events (`r`, `w`, `rw`): `w` means replies are waiting for the socket to drain.
    pub events: Option<&'a str>,
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
/// runs for a dozen fields on every line: values of up to seven digits (all but ids and
/// memory sizes of busy servers) are found and converted eight bytes at a time (SWAR), without
/// a loop.
#[inline]
fn number(b: &[u8], from: usize, field: &'static str) -> Result<(u64, usize), ParseError> {
    // Digits become 0..=9; anything else (including the zero padding past the end) is 10 or
    // more, or has its high bit set: flagged in `other`. Masked to seven bits first, the
    // addition cannot carry from one byte into the next.
    let x = word(b, from) ^ DIGITS;
    let other = (((x & LOW7) + NINES) | x) & HIGH;
    let len = (other.trailing_zeros() / 8) as usize;
    if len == 8 {
        return long_number(b, from, field);
    }
    let i = from + len;
    if len == 0 || b.get(i).is_some_and(|&c| c != b' ') {
        return Err(ParseError::BadNumber(field));
    }
    // The digits moved to the top bytes (the first, most significant, in the lowest): the
    // bytes below become leading zeros. Then pairs, quads and octets of digits are combined
    // with one multiply each.
    let mut v = x << (64 - 8 * len);
    v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    v = (v.wrapping_mul(10_000) + (v >> 32)) & 0xffff_ffff;
    Ok((v, i))
}

/// [`number`] for eight digits or more: a digit at a time.
#[cold]
#[inline(never)]
fn long_number(b: &[u8], from: usize, field: &'static str) -> Result<(u64, usize), ParseError> {
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
const DIGITS: u64 = 0x3030_3030_3030_3030;
/// Added to a byte of 0..=127, sets its high bit exactly when it is 10 or more.
const NINES: u64 = 0x7676_7676_7676_7676;

/// High bit set exactly in the zero bytes of `v` (no false positives: after masking to 7 bits
/// the addition cannot carry from one byte into the next).
#[inline]
fn zero_bytes(v: u64) -> u64 {
    !(((v & LOW7) + LOW7) | v) & HIGH
}

/// The eight bytes of `b` from `at`, little-endian, zero-padded past the end: a zero byte is
/// neither ' ' nor '=' nor a key's byte, so a search or a key compare never finds a byte that
/// is not there.
#[inline]
fn word(b: &[u8], at: usize) -> u64 {
    match b.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        Some(w) => u64::from_le_bytes(*w),
        None => padded_word(b, at),
    }
}

/// [`word`] within eight bytes of the end: out of line, so the common case stays one load.
/// The last eight bytes of the line, shifted down past the ones before `at`, with zeros
/// shifted in: no byte-by-byte copy (every line's last fields come here).
#[cold]
#[inline(never)]
fn padded_word(b: &[u8], at: usize) -> u64 {
    if at >= b.len() {
        return 0;
    }
    match b.last_chunk::<8>() {
        // at < len < at + 8, so the shift is 8 to 56 bits.
        Some(last) => u64::from_le_bytes(*last) >> (8 * (at + 8 - b.len())),
        None => b[at..]
            .iter()
            .rev()
            .fold(0, |w, &c| (w << 8) | u64::from(c)),
    }
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
const K_LIB_VER: u64 = key(b"lib-ver");
const K_QBUF: u64 = key(b"qbuf");
const K_OBL: u64 = key(b"obl");
const K_OLL: u64 = key(b"oll");
const K_WATCH: u64 = key(b"watch");
const K_EVENTS: u64 = key(b"events");

/// What to do with a field, from its key: a field of the entry, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Skip,
    Id,
    Addr,
    Laddr,
    Name,
    Age,
    Idle,
    Flags,
    Db,
    Sub,
    Psub,
    Ssub,
    Omem,
    TotMem,
    Cmd,
    User,
    Resp,
    LibName,
    LibVer,
    Qbuf,
    ArgvMem,
    MultiMem,
    Obl,
    Oll,
    Watch,
    TotCmds,
    TotNetIn,
    TotNetOut,
    Events,
}

#[inline]
fn short_key(k: u64) -> Field {
    match k {
        K_ID => Field::Id,
        K_ADDR => Field::Addr,
        K_LADDR => Field::Laddr,
        K_NAME => Field::Name,
        K_AGE => Field::Age,
        K_IDLE => Field::Idle,
        K_FLAGS => Field::Flags,
        K_DB => Field::Db,
        K_SUB => Field::Sub,
        K_PSUB => Field::Psub,
        K_SSUB => Field::Ssub,
        K_OMEM => Field::Omem,
        K_TOT_MEM => Field::TotMem,
        K_CMD => Field::Cmd,
        K_USER => Field::User,
        K_RESP => Field::Resp,
        K_LIB_VER => Field::LibVer,
        K_QBUF => Field::Qbuf,
        K_OBL => Field::Obl,
        K_OLL => Field::Oll,
        K_WATCH => Field::Watch,
        K_EVENTS => Field::Events,
        _ => Field::Skip,
    }
}

/// The key of a field at a known position of the line, as learned from an earlier line: its
/// bytes and the '=' after them as two masked words, so that checking a prediction is two
/// compares.
#[derive(Debug, Clone, Copy)]
struct Slot {
    head: u64,
    head_mask: u64,
    tail: u64,
    tail_mask: u64,
    /// Key bytes plus the '='.
    len: usize,
    field: Field,
}

impl Slot {
    /// Matches nothing (`w & 0` is never 1): the slot of a position not learned yet.
    const NONE: Slot = Slot {
        head: 1,
        head_mask: 0,
        tail: 0,
        tail_mask: 0,
        len: 0,
        field: Field::Skip,
    };

    /// Keys longer than this (with their '=') are not learned: Redis has none.
    const MAX_LEN: usize = 16;

    /// The slot of the key `b[at..eq]` (with `b[eq] == '='`), or [`NONE`](Self::NONE) if it is
    /// too long.
    fn learn(b: &[u8], at: usize, eq: usize, field: Field) -> Slot {
        let len = eq + 1 - at;
        if len > Self::MAX_LEN {
            return Self::NONE;
        }
        let mask = |n: usize| match n {
            0 => 0,
            8.. => u64::MAX,
            n => (1u64 << (8 * n)) - 1,
        };
        let (head_mask, tail_mask) = (mask(len.min(8)), mask(len.saturating_sub(8)));
        Slot {
            head: word(b, at) & head_mask,
            head_mask,
            tail: word(b, at + 8) & tail_mask,
            tail_mask,
            len,
            field,
        }
    }

    /// Whether the field at `at` has this key. Equivalent to finding its '=' and looking the
    /// key up: the key's bytes hold no ' ' or '=', so the '=' compared is the first stop.
    #[inline]
    fn matches(&self, b: &[u8], at: usize) -> bool {
        let (head, tail) = match b.get(at..).and_then(<[u8]>::first_chunk::<16>) {
            Some(c) => {
                let v = u128::from_le_bytes(*c);
                (v as u64, (v >> 64) as u64)
            }
            None => (word(b, at), word(b, at + 8)),
        };
        (head & self.head_mask == self.head) & (tail & self.tail_mask == self.tail)
    }
}

/// The most fields per line whose keys are learned (Redis 7.2 sends 29; later ones are
/// parsed without a prediction).
const MAX_FIELDS: usize = 48;

/// A CLIENT LIST line parser that learns where each key is. A server prints the same fields in
/// the same order on every line, so once a line has been parsed, the next one's keys are
/// checked against the learned ones (a compare each) instead of being searched for and looked
/// up (a third of the parse). A line that differs is parsed field by field as before and
/// re-teaches the positions that differ: the result never depends on what was learned.
/// Reuse one across the lines of a reply (and across replies).
#[derive(Debug, Clone)]
pub struct Parser {
    slots: [Slot; MAX_FIELDS],
}

impl Default for Parser {
    fn default() -> Self {
        Self {
            slots: [Slot::NONE; MAX_FIELDS],
        }
    }
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one line (without its line terminator; a trailing '\r' is tolerated).
    pub fn parse<'a>(&mut self, line: &'a str) -> Result<ClientEntry<'a>, ParseError> {
        let mut e = ClientEntry::default();
        self.parse_into(&mut e, line)?;
        Ok(e)
    }

    /// Like [`parse`](Self::parse), into an existing entry (reset first): the hot loop reuses one
    /// entry instead of moving a fresh one out of every call.
    ///
    /// One pass: each field's key is read as one eight-byte word (keys are "key=value" with no
    /// '=' or ' ' in the key; values never hold ' ' because Redis refuses spaces in client
    /// names, but may hold '='), and numbers are parsed while their end is found.
    pub fn parse_into<'a>(
        &mut self,
        e: &mut ClientEntry<'a>,
        line: &'a str,
    ) -> Result<(), ParseError> {
        *e = ClientEntry::default();
        let line = line.strip_suffix('\r').unwrap_or(line);
        let b = line.as_bytes();
        let mut have_addr = false;
        let mut at = 0;
        let mut nth = 0;
        while at < b.len() {
            let (field, value) = match self.slots.get(nth) {
                // A learned key never starts with ' ': no need to look for extra spaces first.
                Some(s) if s.matches(b, at) => (s.field, at + s.len),
                _ if b[at] == b' ' => {
                    at += 1;
                    continue;
                }
                slot => {
                    let (field, eq) = generic_key(b, at)?;
                    if slot.is_some() {
                        self.slots[nth] = Slot::learn(b, at, eq, field);
                    }
                    (field, eq + 1)
                }
            };
            nth += 1;
            // Most fields are skipped: tested first, they take no jump through the table below.
            if field == Field::Skip {
                at = field_end(b, value) + 1;
                continue;
            }
            let num = |name| number(b, value, name).map(|(n, end)| (Some(n), end));
            let text = || {
                let end = field_end(b, value);
                // Slicing after an ASCII '=' and before an ASCII ' ' (or the end) always
                // lands on char boundaries.
                (Some(&line[value..end]), end)
            };
            let end = match field {
                Field::Skip => field_end(b, value),
                Field::Id => set(&mut e.id, num("id")?),
                Field::Age => set(&mut e.age, num("age")?),
                Field::Idle => set(&mut e.idle, num("idle")?),
                Field::Db => set(&mut e.db, num("db")?),
                Field::Sub => set(&mut e.sub, num("sub")?),
                Field::Psub => set(&mut e.psub, num("psub")?),
                Field::Ssub => set(&mut e.ssub, num("ssub")?),
                Field::Omem => set(&mut e.omem, num("omem")?),
                Field::TotMem => set(&mut e.tot_mem, num("tot-mem")?),
                Field::Resp => set(&mut e.resp, num("resp")?),
                Field::Addr => {
                    let (v, end) = text();
                    e.addr = v.unwrap_or_default();
                    have_addr = true;
                    end
                }
                Field::Laddr => set(&mut e.laddr, text()),
                Field::Name => set(&mut e.name, text()),
                Field::Flags => set(&mut e.flags, text()),
                Field::Cmd => set(&mut e.cmd, text()),
                Field::User => set(&mut e.user, text()),
                Field::LibName => set(&mut e.lib_name, text()),
                Field::LibVer => set(&mut e.lib_ver, text()),
                Field::Events => set(&mut e.events, text()),
                Field::Qbuf => set(&mut e.qbuf, num("qbuf")?),
                Field::ArgvMem => set(&mut e.argv_mem, num("argv-mem")?),
                Field::MultiMem => set(&mut e.multi_mem, num("multi-mem")?),
                Field::Obl => set(&mut e.obl, num("obl")?),
                Field::Oll => set(&mut e.oll, num("oll")?),
                Field::Watch => set(&mut e.watch, num("watch")?),
                Field::TotCmds => set(&mut e.tot_cmds, num("tot-cmds")?),
                Field::TotNetIn => set(&mut e.tot_net_in, num("tot-net-in")?),
                Field::TotNetOut => set(&mut e.tot_net_out, num("tot-net-out")?),
            };
            at = end + 1;
        }
        if !have_addr {
            return Err(ParseError::MissingAddr);
        }
        Ok(())
    }
}

/// Stores a field's value; returns where it ended.
#[inline]
fn set<T>(slot: &mut Option<T>, (v, end): (Option<T>, usize)) -> usize {
    *slot = v;
    end
}

/// The key of the field starting at `at` (not a ' '), found by searching for its '=', and
/// where the '=' is.
#[inline]
fn generic_key(b: &[u8], at: usize) -> Result<(Field, usize), ParseError> {
    let w = word(b, at);
    let stops = zero_bytes(w ^ EQUALS) | zero_bytes(w ^ SPACES);
    if stops != 0 {
        let k = (stops.trailing_zeros() / 8) as usize;
        if b[at + k] != b'=' {
            return Err(ParseError::FieldWithoutValue);
        }
        // k <= 7, so the shift cannot overflow; k == 0 (an empty key) masks to 0,
        // which is no known key.
        Ok((short_key(w & ((1u64 << (8 * k)) - 1)), at + k))
    } else {
        // No '=' in eight bytes: a long key (qbuf-free, argv-mem, lib-name...), or a
        // field without one.
        let eq = key_end(b, at + 8).ok_or(ParseError::FieldWithoutValue)?;
        let field = match &b[at..eq] {
            b"lib-name" => Field::LibName,
            b"argv-mem" => Field::ArgvMem,
            b"multi-mem" => Field::MultiMem,
            b"tot-cmds" => Field::TotCmds,
            b"tot-net-in" => Field::TotNetIn,
            b"tot-net-out" => Field::TotNetOut,
            _ => Field::Skip,
        };
        Ok((field, eq))
    }
}

impl<'a> ClientEntry<'a> {
    /// Parses one line (without its line terminator; a trailing '\r' is tolerated). Parsing
    /// many lines, a reused [`Parser`] is faster.
    pub fn parse(line: &'a str) -> Result<Self, ParseError> {
        Parser::new().parse(line)
    }

    /// Like [`parse`](Self::parse), into an existing entry (reset first).
    pub fn parse_into(&mut self, line: &'a str) -> Result<(), ParseError> {
        Parser::new().parse_into(self, line)
    }

    /// The peer's IP without the port: `127.0.0.1`, `::1` (brackets dropped), or `unix` for a
    /// unix-socket client.
    pub fn source_ip(&self) -> &'a str {
        self.source_ip_with(self.flag_set())
    }

    /// [`source_ip`](Self::source_ip) with the flags already read.
    pub fn source_ip_with(&self, flags: FlagSet) -> &'a str {
        let addr = self.addr;
        if addr.starts_with('/') || flags.contains(b'U') {
            return "unix";
        }
        if let Some(rest) = addr.strip_prefix('[') {
            if let Some((ip, _port)) = rest.split_once(']') {
                return ip;
            }
        }
        // Old servers print IPv6 unbracketed (`::1:6379`): the port is still after the last ':'.
        // A plain backwards loop: the ':' is at most six bytes from the end, too close for a
        // vectorised search to pay off.
        match addr.bytes().rposition(|c| c == b':') {
            // Cutting at an ASCII ':' lands on char boundaries.
            Some(i) if i > 0 => &addr[..i],
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

impl Parser {
    /// Parses every line of a CLIENT LIST reply into one reused entry and calls `each` with
    /// it: the one loop over a reply that the aggregator, the one-shot command and relief
    /// share. Returns how many non-empty lines were not client lines (skipped).
    #[inline]
    pub fn each_entry<'a>(
        &mut self,
        reply: &'a str,
        mut each: impl FnMut(&ClientEntry<'a>),
    ) -> u64 {
        let mut e = ClientEntry::default();
        let mut bad = 0;
        for line in raw_lines(reply) {
            match self.parse_into(&mut e, line) {
                Ok(()) => each(&e),
                Err(_) => bad += 1,
            }
        }
        bad
    }
}

/// Iterates the non-empty lines of a CLIENT LIST reply with their parse results.
pub fn lines(reply: &str) -> impl Iterator<Item = Result<ClientEntry<'_>, ParseError>> {
    let mut parser = Parser::new();
    raw_lines(reply).map(move |line| parser.parse(line))
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
    fn numbers_of_every_length_and_what_may_follow_them() {
        let digits = "98765432109876543210";
        for len in 1..=digits.len() {
            let v = &digits[..len];
            let want = v.parse::<u64>().map_err(|_| ParseError::BadNumber("idle"));
            for line in [format!("addr=a idle={v}"), format!("idle={v} addr=a")] {
                assert_eq!(ClientEntry::parse(&line).map(|e| e.idle), want.map(Some));
            }
            for bad in [":", "/", "a", "=", "\u{e9}", "\0", "0x"] {
                let line = format!("idle={v}{bad} addr=a");
                let got = ClientEntry::parse(&line).map(|e| e.idle);
                assert_eq!(got, Err(ParseError::BadNumber("idle")), "{line:?}");
            }
        }
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
    fn a_parser_reused_across_lines_of_other_shapes() {
        let mut p = Parser::new();
        let full = "id=7 addr=127.0.0.1:1 name=a age=2 idle=5 flags=N tot-mem=9 lib-name=x cmd=get";
        for line in [
            full,
            full,
            // The same keys followed by one more byte, fields absent, moved, malformed.
            "idx=7 addr=127.0.0.1:1 namex=a age=2 idle=5 flags=N tot-memx=9 lib-namex=x",
            "addr=127.0.0.1:1 id=7 age=2",
            "id=7 addr=127.0.0.1:1 name=a age=x",
            "id=7 addr=127.0.0.1:1 name",
            "id=7 addr=127.0.0.1:1 name=a age=2 idle=5 flags=N tot-mem=9 lib-name=y cmd=get\r",
            full,
        ] {
            assert_eq!(p.parse(line), ClientEntry::parse(line), "{line:?}");
        }
        let e = p.parse(full).expect("valid");
        assert_eq!((e.id, e.tot_mem, e.lib_name), (Some(7), Some(9), Some("x")));
        assert_eq!(
            p.parse("idx=7 addr=1.2.3.4:5 tot-memx=1")
                .map(|e| (e.id, e.tot_mem)),
            Ok((None, None))
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
