//! Which connections a finding means: the culprit group plus a predicate. The one-shot command
//! lists their ids from its snapshot, the printed pipelines re-select them from a live CLIENT
//! LIST with the same predicate in awk, and a relief action (issue 16) can act on them over
//! the exporter's own connection.

use serde::Serialize;

use super::shell;
use crate::analysis::aggregate::{ipv4_prefix, Dimension};
use crate::redis::client_list::ClientEntry;
use crate::redis::client_list::CLIENT_NAME;
use crate::redis::label::{bound, kept_prefix, MAX_LABEL_BYTES};

/// Which of a group's connections a selector means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Only {
    /// Idle at least the selector's `idle_seconds`, not pub/sub, not blocked.
    Idle,
    /// A leak's own connections: idle at least `idle_seconds`, or younger and untouched since
    /// they connected ([`crate::analysis::aggregate::untouched`]); not pub/sub, not blocked.
    Unused,
    /// Idle pub/sub subscribers.
    IdlePubsub,
    /// In a blocking command.
    Blocked,
    /// With output buffer memory.
    OutputBuffer,
}

impl Only {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Unused => "unused",
            Self::IdlePubsub => "idle_pubsub",
            Self::Blocked => "blocked",
            Self::OutputBuffer => "output_buffer",
        }
    }
}

/// Which connections a remediation acts on: the finding's culprit group plus a predicate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selector {
    /// `source_ip`, `client_name`, `lib_name` or `address_prefix` (never `all_sources`: that
    /// selects nothing).
    pub group: Dimension,
    /// The source address, the client name (empty: connections without a name), the library,
    /// or `a.b.c.0/24`.
    pub key: String,
    pub only: Only,
    pub idle_seconds: u64,
    /// For a `workload` (src/identity): its source addresses, separated by spaces (the key is
    /// the workload's name). Empty for every other group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sources: String,
}

impl Selector {
    /// How a report names the group: `source_ip 10.0.0.5`, `client_name ''` (no name).
    pub fn describe(&self) -> String {
        if self.key.is_empty() {
            format!("{} ''", self.group)
        } else {
            format!("{} {}", self.group, self.key)
        }
    }

    /// `a.b.c.` of an `address_prefix` key `a.b.c.0/24`.
    fn prefix(&self) -> Option<&str> {
        let p = self.key.strip_suffix("0/24")?;
        p.ends_with('.').then_some(p)
    }

    /// Whether a value from CLIENT LIST is this selector's key. The key is a label value: a
    /// value longer than a label may be was cut (its start, `…`, a hash of the whole), so a
    /// long value is compared in its bounded form, which names it exactly.
    fn is_key(&self, value: &str) -> bool {
        if value.len() > MAX_LABEL_BYTES {
            bound(value) == self.key.as_str()
        } else {
            value == self.key
        }
    }

    /// The start of the original values a cut key stands for (see [`crate::redis::label::kept_prefix`]).
    pub(crate) fn cut_key(&self) -> Option<&str> {
        match self.group {
            Dimension::AddressPrefix | Dimension::AllSources | Dimension::Workload => None,
            _ => kept_prefix(&self.key),
        }
    }

    /// True when a CLIENT LIST line is one of the connections this selector means.
    pub fn matches(&self, e: &ClientEntry<'_>) -> bool {
        let in_group = match self.group {
            Dimension::SourceIp => self.is_key(e.source_ip()),
            Dimension::ClientName => self.is_key(e.name.unwrap_or("")),
            Dimension::LibName => self.is_key(e.lib_name.unwrap_or("")),
            Dimension::AddressPrefix => match (ipv4_prefix(e.source_ip()), self.prefix()) {
                (Some(p), Some(k)) => k.strip_suffix('.') == Some(p),
                _ => false,
            },
            // Never built: a selector of every connection would close every connection.
            Dimension::AllSources => false,
            Dimension::Workload => {
                let ip = e.source_ip();
                self.sources.split(' ').any(|s| !s.is_empty() && s == ip)
            }
        };
        if !in_group || e.name == Some(CLIENT_NAME) {
            return false;
        }
        let pubsub = e.client_type() == crate::redis::client_list::ClientType::Pubsub
            || e.sub.unwrap_or(0) + e.psub.unwrap_or(0) + e.ssub.unwrap_or(0) > 0;
        let idle = e.idle.is_some_and(|i| i >= self.idle_seconds);
        match self.only {
            Only::Idle => idle && !pubsub && !e.has_flag(b'b'),
            Only::Unused => {
                let blocked = e.has_flag(b'b');
                (idle || crate::analysis::aggregate::untouched(e, pubsub, blocked))
                    && !pubsub
                    && !blocked
            }
            Only::IdlePubsub => idle && pubsub,
            Only::Blocked => e.has_flag(b'b'),
            Only::OutputBuffer => e.omem.unwrap_or(0) > 0,
        }
    }

    /// The value the awk program compares with (`ENVIRON["K"]`): the key, for a prefix
    /// `a.b.c.`, for a cut key the start of the values it stands for.
    pub(crate) fn env_key(&self) -> &str {
        match self.group {
            Dimension::AddressPrefix => self.prefix().unwrap_or("-"),
            Dimension::Workload => &self.sources,
            _ => self.cut_key().unwrap_or(&self.key),
        }
    }

    /// The awk condition (over [`shell::reselect_and_kill`]'s `f` and `a`) that is
    /// [`matches`](Self::matches) for a live CLIENT LIST line; the key is read from
    /// `ENVIRON["K"]`, never written into the program.
    pub(crate) fn awk_condition(&self) -> String {
        let value = match self.group {
            Dimension::SourceIp => "a",
            Dimension::ClientName => "f[\"name\"]",
            Dimension::LibName => "f[\"lib-name\"]",
            Dimension::AddressPrefix | Dimension::AllSources | Dimension::Workload => "",
        };
        let group = match self.group {
            Dimension::AddressPrefix => {
                "a~/^[0-9][0-9]?[0-9]?\\.[0-9][0-9]?[0-9]?\\.[0-9][0-9]?[0-9]?\\.[0-9][0-9]?[0-9]?$/&&substr(a,1,length(ENVIRON[\"K\"]))==ENVIRON[\"K\"]".to_string()
            }
            Dimension::AllSources => "0".to_string(),
            // One of the workload's addresses (space-separated in K).
            Dimension::Workload => {
                "a!=\"\"&&index(\" \" ENVIRON[\"K\"] \" \",\" \" a \" \")>0".to_string()
            }
            // A cut key: the values longer than a label that start as it does (awk has no
            // FNV-1a to check the hash; values that long sharing their first 117 bytes are
            // one service's).
            _ if self.cut_key().is_some() => format!(
                "length({value})>{MAX_LABEL_BYTES}&&substr({value},1,length(ENVIRON[\"K\"]))==ENVIRON[\"K\"]"
            ),
            _ => format!("({value} \"\")==(ENVIRON[\"K\"] \"\")"),
        };
        let pubsub = "(f[\"flags\"]~/P/||f[\"sub\"]+f[\"psub\"]+f[\"ssub\"]>0)";
        // `+0`: substr() gives strings, and awk compares a string with a number as strings
        // ("9" >= "10").
        let idle = format!("f[\"idle\"]+0>={}", self.idle_seconds);
        let only = match self.only {
            Only::Idle => format!("{idle}&&!{pubsub}&&f[\"flags\"]!~/b/"),
            // `untouched` in awk: at least 2 s old, and never ran a command or ran its last
            // within a second of connecting, at most 8 of them (where tot-cmds is listed).
            Only::Unused => format!(
                "({idle}||(f[\"age\"]!=\"\"&&f[\"idle\"]!=\"\"&&f[\"age\"]+0>=2&&(f[\"cmd\"]==\"NULL\"||(f[\"idle\"]+1>=f[\"age\"]+0&&(!(\"tot-cmds\" in f)||f[\"tot-cmds\"]+0<=8)))))&&!{pubsub}&&f[\"flags\"]!~/b/"
            ),
            Only::IdlePubsub => format!("{idle}&&{pubsub}"),
            Only::Blocked => "f[\"flags\"]~/b/".to_string(),
            Only::OutputBuffer => "f[\"omem\"]+0>0".to_string(),
        };
        // Our own name is a constant of safe characters: it can sit in the program.
        debug_assert!(CLIENT_NAME
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        format!("({group})&&f[\"name\"]!=\"{CLIENT_NAME}\"&&{only}")
    }

    /// A command that re-selects these connections from a live CLIENT LIST and kills them by
    /// id, on any server version (only newer servers filter by idle time). The key goes
    /// through the environment, shell-quoted; the pipeline exits 1 when Redis refuses it.
    pub fn pipeline(&self, cli: &str) -> String {
        shell::reselect_and_kill(cli, &[("K", self.env_key())], &self.awk_condition())
    }
}
