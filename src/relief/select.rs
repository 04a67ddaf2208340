//! Which connections an action means: the operator's criteria (all must hold), then the
//! connections relief never closes (replicas, the primary link, the exporter's own) and those
//! it closes only when asked (pub/sub, blocked).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::diagnose::{Cause, Selector};
use crate::redis::client_list::CLIENT_NAME;
use crate::redis::client_list::{ClientEntry, ClientType};

/// Longest string accepted in a selector (a client name can be megabytes; a selector that
/// long is a mistake or an attack).
pub const MAX_SELECTOR_LEN: usize = 1024;

/// The selector of a request, as the operator wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    /// Source address: an IP (every port), `IP:port` / `[IPv6]:port` (one connection), or `unix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// Exact client name (`CLIENT SETNAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Exact client library (`lib-name`, Redis 7.2+ / Valkey 8+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lib: Option<String>,
    /// Exact ACL user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Idle at least this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_idle_seconds: Option<u64>,
    /// `top` (the diagnosis' most likely cause) or a cause (`connection_leak`): the
    /// connections that finding blames, as of the preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
    /// Close pub/sub connections too (never otherwise).
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_pubsub: bool,
    /// Close connections blocked in BLPOP, XREAD BLOCK... too (never otherwise).
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_blocked: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Select {
    /// Whether any criterion is given (an action without one closes nothing).
    pub fn is_empty(&self) -> bool {
        self.addr.is_none()
            && self.name.is_none()
            && self.lib.is_none()
            && self.user.is_none()
            && self.min_idle_seconds.is_none()
            && self.finding.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Ip(IpAddr),
    Socket(IpAddr, u16),
    Unix,
}

impl Addr {
    pub fn parse(s: &str) -> Option<Addr> {
        if s == "unix" {
            return Some(Addr::Unix);
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(Addr::Ip(ip));
        }
        s.parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| Addr::Socket(a.ip(), a.port()))
    }

    fn matches(&self, e: &ClientEntry<'_>) -> bool {
        let src = e.source_ip();
        match self {
            Addr::Unix => src == "unix",
            Addr::Ip(ip) => src.parse::<IpAddr>().is_ok_and(|s| s == *ip),
            Addr::Socket(ip, port) => {
                // `1.2.3.4:5`, `[::1]:5`, or old servers' unbracketed `::1:5`.
                let port_of = e
                    .addr
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok());
                src.parse::<IpAddr>().is_ok_and(|s| s == *ip) && port_of == Some(*port)
            }
        }
    }
}

/// A validated selector; `finding` resolved to the diagnosis' selector at preview time, so
/// that the execute step re-checks what the operator saw, not a newer diagnosis.
#[derive(Debug, Clone, PartialEq)]
pub struct Criteria {
    pub addr: Option<Addr>,
    pub name: Option<String>,
    pub lib: Option<String>,
    pub user: Option<String>,
    pub min_idle_seconds: Option<u64>,
    pub finding: Option<(Cause, Selector)>,
    pub include_pubsub: bool,
    pub include_blocked: bool,
}

/// Why a connection that matched the criteria is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protected {
    Replica,
    Primary,
    Own,
    Pubsub,
    Blocked,
    NoId,
}

impl Protected {
    pub fn as_str(self) -> &'static str {
        match self {
            Protected::Replica => "replica",
            Protected::Primary => "primary_link",
            Protected::Own => "exporter",
            Protected::Pubsub => "pubsub",
            Protected::Blocked => "blocked",
            Protected::NoId => "no_id",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    NoMatch,
    Protected(Protected),
    Close,
}

impl Criteria {
    /// Checks the operator's selector; `finding` is looked up by the caller.
    pub fn new(s: &Select, finding: Option<(Cause, Selector)>) -> Result<Criteria, String> {
        for (what, v) in [
            ("addr", &s.addr),
            ("name", &s.name),
            ("lib", &s.lib),
            ("user", &s.user),
            ("finding", &s.finding),
        ] {
            if v.as_ref().is_some_and(|v| v.len() > MAX_SELECTOR_LEN) {
                return Err(format!(
                    "select.{what} is longer than {MAX_SELECTOR_LEN} bytes"
                ));
            }
        }
        let addr = match &s.addr {
            Some(a) => Some(Addr::parse(a).ok_or_else(|| {
                "select.addr must be an IP address, IP:port ([IPv6]:port) or `unix`".to_string()
            })?),
            None => None,
        };
        Ok(Criteria {
            addr,
            name: s.name.clone(),
            lib: s.lib.clone(),
            user: s.user.clone(),
            min_idle_seconds: s.min_idle_seconds,
            finding,
            include_pubsub: s.include_pubsub,
            include_blocked: s.include_blocked,
        })
    }

    /// Whether every criterion holds for this CLIENT LIST line.
    fn selects(&self, e: &ClientEntry<'_>) -> bool {
        self.addr.as_ref().is_none_or(|a| a.matches(e))
            && self
                .name
                .as_deref()
                .is_none_or(|n| e.name.unwrap_or("") == n)
            && self.lib.as_deref().is_none_or(|l| e.lib_name == Some(l))
            && self.user.as_deref().is_none_or(|u| e.user == Some(u))
            && self
                .min_idle_seconds
                .is_none_or(|m| e.idle.is_some_and(|i| i >= m))
            && self.finding.as_ref().is_none_or(|(_, s)| s.matches(e))
    }

    /// What to do with one connection; `own_id` is the exporter's own (CLIENT ID).
    pub fn verdict(&self, e: &ClientEntry<'_>, own_id: Option<u64>) -> Verdict {
        if !self.selects(e) {
            return Verdict::NoMatch;
        }
        let flags = e.flag_set();
        let why = match e.client_type_with(flags) {
            ClientType::Replica => Some(Protected::Replica),
            ClientType::Master => Some(Protected::Primary),
            _ if e.id.is_none() => Some(Protected::NoId),
            // Any exporter's held connection: ours, and another instance's that watches too.
            _ if e.id == own_id || e.name == Some(CLIENT_NAME) => Some(Protected::Own),
            ClientType::Pubsub if !self.include_pubsub => Some(Protected::Pubsub),
            _ if flags.contains(b'b') && !self.include_blocked => Some(Protected::Blocked),
            _ => None,
        };
        why.map_or(Verdict::Close, Verdict::Protected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str) -> ClientEntry<'_> {
        ClientEntry::parse(line).expect("line")
    }

    fn criteria(s: Select) -> Criteria {
        Criteria::new(&s, None).expect("valid")
    }

    #[test]
    fn criteria_all_hold_and_protected_connections_stay() {
        let c = criteria(Select {
            addr: Some("127.0.0.2".into()),
            min_idle_seconds: Some(10),
            ..Default::default()
        });
        let close =
            "id=7 addr=127.0.0.2:5000 name=leak age=50 idle=20 flags=N cmd=NULL user=default";
        assert_eq!(c.verdict(&entry(close), Some(3)), Verdict::Close);
        for (line, want) in [
            (
                "id=8 addr=127.0.0.2:5001 age=50 idle=2 flags=N",
                Verdict::NoMatch,
            ),
            (
                "id=9 addr=127.0.0.20:5001 age=50 idle=20 flags=N",
                Verdict::NoMatch,
            ),
            (
                "id=10 addr=127.0.0.2:5002 age=50 idle=20 flags=S cmd=replconf",
                Verdict::Protected(Protected::Replica),
            ),
            (
                "id=11 addr=127.0.0.2:6379 age=50 idle=20 flags=M",
                Verdict::Protected(Protected::Primary),
            ),
            (
                "id=3 addr=127.0.0.2:5003 age=50 idle=20 flags=N",
                Verdict::Protected(Protected::Own),
            ),
            (
                "id=12 addr=127.0.0.2:5004 name=redis-clients-exporter age=50 idle=20 flags=N",
                Verdict::Protected(Protected::Own),
            ),
            (
                "id=13 addr=127.0.0.2:5005 age=50 idle=20 flags=P sub=1",
                Verdict::Protected(Protected::Pubsub),
            ),
            (
                "id=14 addr=127.0.0.2:5006 age=50 idle=20 flags=N sub=0 psub=1",
                Verdict::Protected(Protected::Pubsub),
            ),
            (
                "id=15 addr=127.0.0.2:5007 age=50 idle=20 flags=b",
                Verdict::Protected(Protected::Blocked),
            ),
        ] {
            assert_eq!(c.verdict(&entry(line), Some(3)), want, "{line}");
        }
        // Opt-ins open pub/sub and blocked ones; never replicas, the primary link or ourselves.
        let all = criteria(Select {
            addr: Some("127.0.0.2".into()),
            include_pubsub: true,
            include_blocked: true,
            ..Default::default()
        });
        let sub = "id=13 addr=127.0.0.2:5005 age=50 idle=20 flags=P sub=1";
        let blk = "id=15 addr=127.0.0.2:5007 age=50 idle=20 flags=b";
        let rep = "id=10 addr=127.0.0.2:5002 age=50 idle=20 flags=S";
        assert_eq!(all.verdict(&entry(sub), Some(3)), Verdict::Close);
        assert_eq!(all.verdict(&entry(blk), Some(3)), Verdict::Close);
        assert_eq!(
            all.verdict(&entry(rep), Some(3)),
            Verdict::Protected(Protected::Replica)
        );
    }

    #[test]
    fn names_libraries_users_and_addresses_match_exactly() {
        let line = "id=7 addr=[::1]:5000 name=api age=50 idle=0 flags=N user=app lib-name=redis-py";
        let e = entry(line);
        let yes = |s: Select| criteria(s).verdict(&e, None) == Verdict::Close;
        assert!(yes(Select {
            name: Some("api".into()),
            ..Default::default()
        }));
        assert!(!yes(Select {
            name: Some("ap".into()),
            ..Default::default()
        }));
        assert!(yes(Select {
            lib: Some("redis-py".into()),
            user: Some("app".into()),
            addr: Some("::1".into()),
            ..Default::default()
        }));
        assert!(!yes(Select {
            user: Some("default".into()),
            ..Default::default()
        }));
        assert!(yes(Select {
            addr: Some("[::1]:5000".into()),
            ..Default::default()
        }));
        assert!(!yes(Select {
            addr: Some("[::1]:5001".into()),
            ..Default::default()
        }));
        let old = entry("id=8 addr=::1:5000 age=5 idle=0 flags=N");
        assert_eq!(
            criteria(Select {
                addr: Some("[::1]:5000".into()),
                ..Default::default()
            })
            .verdict(&old, None),
            Verdict::Close
        );
        let sock = entry("id=9 addr=/tmp/r.sock:0 age=5 idle=0 flags=U");
        assert_eq!(
            criteria(Select {
                addr: Some("unix".into()),
                ..Default::default()
            })
            .verdict(&sock, None),
            Verdict::Close
        );
        assert!(Criteria::new(
            &Select {
                addr: Some("10.0.0.0/8".into()),
                ..Default::default()
            },
            None
        )
        .is_err());
        assert!(Criteria::new(
            &Select {
                name: Some("x".repeat(MAX_SELECTOR_LEN + 1)),
                ..Default::default()
            },
            None
        )
        .is_err());
    }
}
