//! The exporter's Redis vocabulary: every command the pollers, the chunked CLIENT LIST,
//! discovery and the connection's handshake send, typed, each with its spelling and the bound of
//! its reply (src/redis/resp.rs `Limits`) in one place. [`Conn::run`] and [`Conn::send_command`]
//! take one. Relief still spells its own (CLIENT KILL, CONFIG SET) through `Conn::call`, whose
//! reply bounds come from the same table by its words ([`limits_of`]); it moves here once
//! relief's split (issue 26, items 1-2) has landed.
//!
//! [`Conn::run`]: crate::redis::connection::Conn::run
//! [`Conn::send_command`]: crate::redis::connection::Conn::send_command

use crate::redis::resp::{encode, Arg, Limits};

/// One command the exporter sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `INFO`: the default sections.
    Info,
    /// `CONFIG GET param`: one parameter (several in one call needs 7.0).
    ConfigGet(&'a str),
    /// `CLIENT LIST`: every connection.
    ClientList,
    /// `CLIENT LIST ID id ...` (6.2+): at most these connections. Ids above 2^63 are not
    /// asked for: no real server hands them out, and Redis would refuse the whole command.
    ClientListIds(&'a [u64]),
    /// `CLIENT ID`: the connection's own id.
    ClientId,
    /// `CLIENT SETNAME name`.
    ClientSetname(&'a str),
    /// `CLIENT NO-EVICT on` (7.0+).
    ClientNoEvict,
    /// `CLIENT NO-TOUCH on` (7.2+).
    ClientNoTouch,
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value` (7.2+).
    ClientSetinfo {
        attribute: &'a str,
        value: &'a str,
    },
    /// `AUTH [user] password`.
    Auth {
        user: Option<&'a str>,
        password: &'a str,
    },
    /// `SELECT db`.
    Select(u64),
    Ping,
    Quit,
    /// `CLUSTER SHARDS` (7.0+).
    ClusterShards,
    /// `CLUSTER NODES`.
    ClusterNodes,
    /// `SENTINEL MASTER name`.
    SentinelMaster(&'a str),
    /// `SENTINEL REPLICAS name` (5.0+).
    SentinelReplicas(&'a str),
    /// `SENTINEL SLAVES name`: REPLICAS before 5.0.
    SentinelSlaves(&'a str),
}

impl Command<'_> {
    /// Appends the command, as RESP, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use Arg::Str as S;
        match *self {
            Command::Info => encode(out, [S("INFO")]),
            Command::ConfigGet(p) => encode(out, [S("CONFIG"), S("GET"), S(p)]),
            Command::ClientList => encode(out, [S("CLIENT"), S("LIST")]),
            Command::ClientListIds(ids) => encode(
                out,
                [S("CLIENT"), S("LIST"), S("ID")].into_iter().chain(
                    ids.iter()
                        .filter(|&&id| id <= i64::MAX as u64)
                        .map(|&id| Arg::Int(id)),
                ),
            ),
            Command::ClientId => encode(out, [S("CLIENT"), S("ID")]),
            Command::ClientSetname(n) => encode(out, [S("CLIENT"), S("SETNAME"), S(n)]),
            Command::ClientNoEvict => encode(out, [S("CLIENT"), S("NO-EVICT"), S("on")]),
            Command::ClientNoTouch => encode(out, [S("CLIENT"), S("NO-TOUCH"), S("on")]),
            Command::ClientSetinfo { attribute, value } => {
                encode(out, [S("CLIENT"), S("SETINFO"), S(attribute), S(value)])
            }
            Command::Auth {
                user: Some(u),
                password,
            } => encode(out, [S("AUTH"), S(u), S(password)]),
            Command::Auth {
                user: None,
                password,
            } => encode(out, [S("AUTH"), S(password)]),
            Command::Select(db) => encode(out, [S("SELECT"), Arg::Int(db)]),
            Command::Ping => encode(out, [S("PING")]),
            Command::Quit => encode(out, [S("QUIT")]),
            Command::ClusterShards => encode(out, [S("CLUSTER"), S("SHARDS")]),
            Command::ClusterNodes => encode(out, [S("CLUSTER"), S("NODES")]),
            Command::SentinelMaster(m) => encode(out, [S("SENTINEL"), S("MASTER"), S(m)]),
            Command::SentinelReplicas(m) => encode(out, [S("SENTINEL"), S("REPLICAS"), S(m)]),
            Command::SentinelSlaves(m) => encode(out, [S("SENTINEL"), S("SLAVES"), S(m)]),
        }
    }

    /// The command as a person would type it (`CLIENT NO-EVICT on`), for a log line: its
    /// arguments as encoded, space-separated.
    pub fn spelled(&self) -> String {
        let mut out = Vec::new();
        self.encode(&mut out);
        let text = String::from_utf8_lossy(&out);
        // `*N`, then `$len` and the argument, each on its own line.
        let args: Vec<&str> = text.split("\r\n").skip(2).step_by(2).collect();
        args.join(" ").trim_end().to_string()
    }

    /// The largest reply a real server sends to it; `clients` is the connection count the
    /// last INFO reported (a full CLIENT LIST is bounded by it).
    pub fn limits(&self, clients: Option<usize>) -> Limits {
        match self {
            Command::Info => Limits::INFO,
            Command::ClientList => Limits::client_list(full_listing_lines(clients)),
            Command::ClientListIds(ids) => Limits::client_list(ids.len()),
            Command::ClusterShards | Command::ClusterNodes => Limits::CLUSTER,
            Command::SentinelMaster(_)
            | Command::SentinelReplicas(_)
            | Command::SentinelSlaves(_) => Limits::SENTINEL,
            _ => Limits::SMALL,
        }
    }
}

/// The lines a full CLIENT LIST may have: the connections INFO reported, a quarter more and 64
/// for those that connected since; unknown, 50,000 (the process-wide budget binds first).
fn full_listing_lines(clients: Option<usize>) -> usize {
    clients.map_or(50_000, |n| n + n / 4 + 64)
}

/// The bound of a command spelled as words (relief's, and anything sent through `Conn::call`):
/// by its first two words and its number of arguments, the same table as [`Command::limits`].
pub fn limits_of(words: [Option<Arg<'_>>; 2], args: usize, clients: Option<usize>) -> Limits {
    let is = |w: Option<Arg<'_>>, name: &str| matches!(w, Some(Arg::Str(s)) if s.eq_ignore_ascii_case(name));
    let [first, second] = words;
    if is(first, "INFO") {
        Limits::INFO
    } else if is(first, "CLIENT") && is(second, "LIST") {
        // `CLIENT LIST ID a b c`: one line per id at most.
        let lines = match args.checked_sub(3) {
            Some(ids) if ids > 0 => ids,
            _ => full_listing_lines(clients),
        };
        Limits::client_list(lines)
    } else if is(first, "CLUSTER") {
        Limits::CLUSTER
    } else if is(first, "SENTINEL") {
        Limits::SENTINEL
    } else {
        Limits::SMALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of a command as `limits_of` sees them, and their count.
    fn words(c: &Command<'_>) -> (Vec<String>, usize) {
        let w: Vec<String> = c.spelled().split(' ').map(str::to_string).collect();
        let n = w.len();
        (w, n)
    }

    #[test]
    fn typed_commands_are_spelled_as_redis_spells_them_and_bounded_alike() {
        let ids = [1u64, 7, u64::MAX];
        for (c, spelled) in [
            (Command::Info, "*1\r\n$4\r\nINFO\r\n"),
            (
                Command::ConfigGet("maxclients"),
                "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$10\r\nmaxclients\r\n",
            ),
            (
                Command::ClientListIds(&ids),
                "*5\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n$2\r\nID\r\n$1\r\n1\r\n$1\r\n7\r\n",
            ),
            (
                Command::Auth {
                    user: Some("u"),
                    password: "p",
                },
                "*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n",
            ),
            (Command::Select(3), "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"),
        ] {
            let mut out = Vec::new();
            c.encode(&mut out);
            assert_eq!(String::from_utf8(out).expect("ascii"), spelled, "{c:?}");
        }
        assert_eq!(Command::ClientNoEvict.spelled(), "CLIENT NO-EVICT on");
        assert_eq!(Command::ClientListIds(&ids).spelled(), "CLIENT LIST ID 1 7");
        // The typed bound and the bound by words agree for every command.
        for c in [
            Command::Info,
            Command::ConfigGet("timeout"),
            Command::ClientList,
            Command::ClientListIds(&ids),
            Command::ClientId,
            Command::ClientNoEvict,
            Command::Ping,
            Command::ClusterShards,
            Command::ClusterNodes,
            Command::SentinelMaster("m"),
            Command::SentinelReplicas("m"),
        ] {
            let (w, n) = words(&c);
            let arg = |i: usize| w.get(i).map(|s| Arg::Str(s.as_str()));
            for clients in [None, Some(3)] {
                let by_words = limits_of([arg(0), arg(1)], n, clients);
                // Ids above 2^63 are not sent: the words count what is.
                if let Command::ClientListIds(_) = c {
                    assert_eq!(by_words, Limits::client_list(2));
                } else {
                    assert_eq!(by_words, c.limits(clients), "{c:?}");
                }
            }
        }
    }
}
