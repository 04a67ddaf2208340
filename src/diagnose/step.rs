//! A remediation step, typed: what it does ([`Remedy`]) and why, with the shell command it
//! prints rendered once, here, from the typed action. Relief reads a step's `CONFIG SET`s and
//! the one-shot command finds the full-server notice by kind, never by parsing the text.

use serde::Serialize;

use super::shell;
use super::{Cause, Only, Selector};
use crate::analysis::aggregate::Dimension;
use crate::config::relief::Param;

/// What a remediation step does. Build steps with [`Step`]'s constructors, which render the
/// printed command from this (the only place a step's command is written); read it where a
/// step's meaning matters (relief's `CONFIG SET`s, the one-shot command's insertion point).
///
/// - [`Advice`](Remedy::Advice): nothing to run, a fact or advice for the operator.
/// - [`Notice`](Remedy::Notice): a notice that frames the steps after it (e.g. the server is
///   full, so none of the commands below can run now).
/// - [`SetParam`](Remedy::SetParam): `CONFIG SET param value` on the target.
/// - [`Close`](Remedy::Close): close the connections a [`Selector`] names, by a server-side
///   filter or by re-selecting them from a live CLIENT LIST.
/// - [`KillIds`](Remedy::KillIds): close these connections by id (from a snapshot).
/// - [`Relieve`](Remedy::Relieve): ask a running exporter to act through its held connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Remedy {
    Advice,
    Notice(Notice),
    SetParam { param: Param, value: i64 },
    Close { selector: Selector, by: CloseBy },
    KillIds(Vec<u64>),
    Relieve(Relieve),
}

/// The notices a report places before a finding's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The server is full: its commands need a new connection, which Redis refuses now.
    FullServer,
}

/// How a [`Remedy::Close`] finds its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseBy {
    /// `CLIENT KILL <IP|NAME|LIB-NAME> key IDLE n TYPE normal SKIPME yes` (Valkey 9's filters).
    ServerFilter,
    /// Re-selected from a live CLIENT LIST by the selector's awk condition, closed by id (any
    /// server version).
    Reselect,
}

/// The `redis-clients-exporter relieve` command a step prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Relieve {
    /// The exporter's URL (`--exporter`).
    pub exporter: String,
    pub target: String,
    /// `--finding CAUSE` with the opt-in its connections need, when it closes connections.
    pub finding: Option<(Cause, Only)>,
    /// `--set param=value`, in the order given.
    pub sets: Vec<(Param, i64)>,
}

/// One remediation step: why, and what it does. Serialized (the JSON report) as `why` and,
/// when it runs something, `command`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub why: String,
    #[serde(skip)]
    pub remedy: Remedy,
    /// Rendered from `remedy` by the constructor (see [`Step::command`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    /// The same action with `redis-cli` only, for a shell without the exporter's binary (see
    /// [`Step::fallback`]): long, so the pages fold it behind the short command.
    #[serde(rename = "fallback_command", skip_serializing_if = "Option::is_none")]
    fallback: Option<String>,
}

impl Step {
    /// Advice: nothing to run.
    pub fn advice(why: impl Into<String>) -> Step {
        Self::without_command(why.into(), Remedy::Advice)
    }

    /// A notice of `kind`, said in `why`.
    pub fn notice(kind: Notice, why: impl Into<String>) -> Step {
        Self::without_command(why.into(), Remedy::Notice(kind))
    }

    fn without_command(why: String, remedy: Remedy) -> Step {
        Step {
            why,
            remedy,
            command: None,
            fallback: None,
        }
    }

    /// `CONFIG SET param value` through `cli`, checked (exits 1 when Redis refuses).
    pub fn set_param(why: impl Into<String>, cli: &str, param: Param, value: i64) -> Step {
        let command =
            shell::checked_ok(&format!("{cli} CONFIG SET {} {value}", param.redis_name()));
        Step {
            why: why.into(),
            remedy: Remedy::SetParam { param, value },
            command: Some(command),
            fallback: None,
        }
    }

    /// Close `selector`'s connections through `cli`: the exporter's own `close` subcommand,
    /// a line a person reads at a glance (same selection in Rust, loud when refused, safe to
    /// rerun), with the `redis-cli`-only form as the fallback. [`CloseBy::ServerFilter`] needs
    /// a selector whose group has a `CLIENT KILL` filter (source, name, library); any other
    /// falls back to re-selection.
    pub fn close(why: impl Into<String>, cli: &str, selector: Selector, by: CloseBy) -> Step {
        let with_redis_cli = match (by, kill_filter(selector.group)) {
            (CloseBy::ServerFilter, Some(filter)) => shell::checked(&format!(
                "{cli} CLIENT KILL {filter} {} IDLE {} TYPE normal SKIPME yes",
                shell::quote(&selector.key),
                selector.idle_seconds
            )),
            _ => selector.pipeline(cli),
        };
        let (command, fallback) = match close_command(cli, &selector) {
            Some(short) => (short, Some(with_redis_cli)),
            None => (with_redis_cli, None),
        };
        Step {
            why: why.into(),
            remedy: Remedy::Close { selector, by },
            command: Some(command),
            fallback,
        }
    }

    /// Close these connections by id through `cli`.
    pub fn kill_ids(why: impl Into<String>, cli: &str, ids: Vec<u64>) -> Step {
        let command = shell::kill_ids(cli, &ids);
        Step {
            why: why.into(),
            remedy: Remedy::KillIds(ids),
            command: Some(command),
            fallback: None,
        }
    }

    /// The `relieve` subcommand; every value from a URL or a target label is shell-quoted.
    pub fn relieve(why: impl Into<String>, relieve: Relieve) -> Step {
        let mut cmd = format!(
            "redis-clients-exporter relieve --exporter {} --target {}",
            shell::quote(&relieve.exporter),
            shell::quote(&relieve.target)
        );
        if let Some((cause, only)) = relieve.finding {
            cmd.push_str(" --finding ");
            cmd.push_str(cause.as_str());
            match only {
                Only::IdlePubsub => cmd.push_str(" --include-pubsub"),
                Only::Blocked => cmd.push_str(" --include-blocked"),
                Only::Idle | Only::Unused | Only::OutputBuffer => {}
            }
        }
        for (param, value) in &relieve.sets {
            cmd.push_str(&format!(" --set {}={value}", param.key()));
        }
        Step {
            why: why.into(),
            remedy: Remedy::Relieve(relieve),
            command: Some(cmd),
            fallback: None,
        }
    }

    /// The shell command this step prints, `None` for advice and notices.
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// The same action with `redis-cli` only, when [`Step::command`] is the exporter's
    /// subcommand.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// True for a notice of `kind`.
    pub fn is_notice(&self, kind: Notice) -> bool {
        self.remedy == Remedy::Notice(kind)
    }
}

/// `redis-clients-exporter close <connection flags> --client-name KEY --idle-seconds N`: the
/// subcommand takes redis-cli's connection flags (`-h -p -s --tls --user -n`, the password from
/// `REDISCLI_AUTH`), so the arguments [`crate::diagnose::redis_cli_for`] wrote for `redis-cli`
/// reach the same server. `None` when `cli` is not such a `redis-cli` line.
fn close_command(cli: &str, selector: &Selector) -> Option<String> {
    let connection = cli.strip_prefix("redis-cli")?;
    let group = match selector.group {
        Dimension::SourceIp => "--source-ip",
        Dimension::ClientName => "--client-name",
        Dimension::LibName => "--lib-name",
        Dimension::AddressPrefix => "--address-prefix",
        Dimension::AllSources | Dimension::Workload => return None,
    };
    let mut cmd = format!(
        "redis-clients-exporter close{connection} {group} {}",
        shell::quote(&selector.key)
    );
    match selector.only {
        Only::Idle => cmd.push_str(&format!(" --idle-seconds {}", selector.idle_seconds)),
        Only::IdlePubsub => cmd.push_str(&format!(
            " --only idle-pubsub --idle-seconds {}",
            selector.idle_seconds
        )),
        Only::Unused => cmd.push_str(&format!(
            " --only unused --idle-seconds {}",
            selector.idle_seconds
        )),
        Only::Blocked => cmd.push_str(" --only blocked"),
        Only::OutputBuffer => cmd.push_str(" --only output-buffer"),
    }
    Some(cmd)
}

/// The `CLIENT KILL` filter that selects a group's connections on the server, if it has one.
pub(crate) fn kill_filter(group: Dimension) -> Option<&'static str> {
    match group {
        Dimension::SourceIp => Some("IP"),
        Dimension::ClientName => Some("NAME"),
        Dimension::LibName => Some("LIB-NAME"),
        Dimension::AddressPrefix | Dimension::AllSources | Dimension::Workload => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The printed command comes from the typed action: a value, a parameter's Redis name,
    /// a selector's key (quoted) and filter are what the step carries.
    #[test]
    fn commands_are_rendered_from_the_typed_action() {
        let s = Step::set_param("w", "redis-cli -p 1", Param::TcpKeepalive, 60);
        assert_eq!(
            s.remedy,
            Remedy::SetParam {
                param: Param::TcpKeepalive,
                value: 60
            }
        );
        assert!(s.command().is_some_and(
            |c| c.starts_with("redis-cli -p 1 CONFIG SET tcp-keepalive 60 2>&1 | awk ")
        ));
        let sel = Selector {
            group: Dimension::ClientName,
            key: "a b'c".into(),
            only: Only::Idle,
            idle_seconds: 90,
            sources: String::new(),
        };
        let s = Step::close("w", "cli", sel.clone(), CloseBy::ServerFilter);
        assert!(s.command().is_some_and(|c| c
            .starts_with("cli CLIENT KILL NAME 'a b'\\''c' IDLE 90 TYPE normal SKIPME yes 2>&1")));
        // A group without a server-side filter is re-selected whatever was asked.
        let prefix = Selector {
            group: Dimension::AddressPrefix,
            key: "10.0.3.0/24".into(),
            ..sel
        };
        let s = Step::close("w", "cli", prefix.clone(), CloseBy::ServerFilter);
        assert_eq!(s.command(), Some(prefix.pipeline("cli").as_str()));
        let s = Step::kill_ids("w", "cli", vec![3, 5]);
        assert_eq!(s.remedy, Remedy::KillIds(vec![3, 5]));
        assert!(s
            .command()
            .is_some_and(|c| c.starts_with("printf 'CLIENT KILL ID %s\\n' 3 5 | cli")));
        let s = Step::notice(Notice::FullServer, "full");
        assert!(s.is_notice(Notice::FullServer) && s.command().is_none());
        assert!(!Step::advice("x").is_notice(Notice::FullServer));
    }

    /// With a `redis-cli` line, closing prints the exporter's one-line `close` (the same
    /// connection flags, the key quoted), and keeps the `redis-cli`-only form as the fallback.
    #[test]
    fn close_prints_the_short_subcommand_and_keeps_the_pipeline_as_fallback() {
        let sel = Selector {
            group: Dimension::ClientName,
            key: "x';touch${IFS}/tmp/P;echo'".into(),
            only: Only::Idle,
            idle_seconds: 90,
            sources: String::new(),
        };
        let cli = "redis-cli -h 10.0.0.7 -p 6379 --tls --user ops";
        let s = Step::close("w", cli, sel.clone(), CloseBy::Reselect);
        assert_eq!(
            s.command(),
            Some(
                r"redis-clients-exporter close -h 10.0.0.7 -p 6379 --tls --user ops --client-name 'x'\'';touch${IFS}/tmp/P;echo'\''' --idle-seconds 90"
            )
        );
        assert_eq!(s.fallback(), Some(sel.pipeline(cli).as_str()));
        let blocked = Selector {
            only: Only::Blocked,
            ..sel.clone()
        };
        let s = Step::close("w", cli, blocked, CloseBy::Reselect);
        assert!(s.command().is_some_and(|c| c.ends_with(" --only blocked")));
        // Not a redis-cli line (a caller's own): the pipeline is the command, no fallback.
        let s = Step::close("w", "cli", sel, CloseBy::Reselect);
        assert!(s.fallback().is_none() && s.command().is_some_and(|c| c.contains("awk")));
    }

    /// The JSON report keeps its shape: `why`, and `command` only when there is one.
    #[test]
    fn a_step_serializes_as_why_and_command() {
        let v = serde_json::to_value(Step::advice("a")).expect("json");
        assert_eq!(v, serde_json::json!({ "why": "a" }));
        let v = serde_json::to_value(Step::kill_ids("b", "cli", vec![1])).expect("json");
        assert_eq!(v["why"], "b");
        assert!(v["command"]
            .as_str()
            .is_some_and(|c| c.contains("CLIENT KILL ID")));
        assert_eq!(v.as_object().map(|o| o.len()), Some(2));
    }
}
