//! `preview`: what an action would close and set, from a fresh CLIENT LIST on the held
//! connection, and the single-use token that lets it run. Changes nothing in Redis.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::held::{client_list, config_get, on_poller, own_id};
use super::hub::{Pending, PollerHandle, Previewed};
use super::{
    clean, refuse, Action, AuditRecord, Criteria, Outcome, Param, Protected, Refusal, ReliefConfig,
    ReliefHub, Select, Verdict,
};
use crate::diagnose::Cause;
use crate::redis::client_list::Parser;
use crate::targets::state::Store;

/// Strings from Redis in a preview (names, users, libraries) are cut to this many bytes: a
/// client name can be megabytes, and a preview lists up to 10,000 connections.
const MAX_SHOWN: usize = 200;

/// `POST /relief/preview`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub target: String,
    #[serde(default)]
    pub select: Select,
    /// Parameter -> value: `{"timeout": 30}`.
    #[serde(default)]
    pub set: BTreeMap<String, i64>,
}

/// What the preview's job brings back from Redis.
struct Snapshot {
    own: Option<u64>,
    reply: String,
    current: Vec<(Param, Result<Option<i64>, String>)>,
}

/// The connections a snapshot's selector closes, and what it leaves alone.
#[derive(Default)]
struct Selection {
    conns: Vec<Previewed>,
    /// The connections as the answer shows them.
    listed: Vec<Json>,
    left_out: BTreeMap<&'static str, u64>,
    /// Whether the server reports `lib-name` at all.
    lib_names: bool,
}

/// What a checked request asks for, before anything is read from Redis.
struct Checked {
    cfg: ReliefConfig,
    handle: PollerHandle,
    set: Vec<(Param, i64)>,
    criteria: Criteria,
}

/// Runs a preview for `user` (the authenticated user, if any); `audit` learns what the request
/// asked as it is checked.
pub async fn preview(
    store: &Store,
    hub: &ReliefHub,
    user: Option<&str>,
    req: PreviewRequest,
    audit: &mut AuditRecord,
) -> Result<(Outcome, Json), Refusal> {
    audit.target = Some(req.target.clone());
    audit.select = serde_json::to_string(&req.select).ok();
    let checked = check(store, hub, user, &req, audit)?;
    let wants_list = !req.select.is_empty();
    let snap = snapshot(&checked, wants_list).await?;
    let selection = select(&snap, &checked.criteria);
    audit.listed = Some(selection.conns.len());
    let max = checked.cfg.max_connections_per_action;
    if selection.conns.len() > max {
        return Err(refuse(
            Outcome::TooMany,
            format!(
                "the selector matches {} connections, more than relief.max_connections_per_action ({max}): narrow it",
                selection.conns.len(),
            ),
        ));
    }
    let mut notes = notes(&req, &selection, wants_list);
    let set_json = set_json(&checked.set, &snap.current);
    let Selection {
        conns,
        listed,
        left_out,
        ..
    } = selection;
    let token = if conns.is_empty() && checked.set.is_empty() {
        notes.push("nothing matches: no token".to_string());
        None
    } else {
        let token = new_token()?;
        audit.token = Some(token.clone());
        hub.remember(
            token.clone(),
            Pending {
                target: req.target.clone(),
                user: user.unwrap_or_default().to_string(),
                select: req.select.clone(),
                criteria: checked.criteria.clone(),
                conns,
                set: checked.set.clone(),
                expires: Instant::now() + checked.cfg.token_ttl,
                used: false,
            },
        );
        Some(token)
    };
    let finding_json = checked
        .criteria
        .finding
        .as_ref()
        .map(|(cause, sel)| json!({ "cause": cause.as_str(), "selector": sel }));
    Ok((
        Outcome::Ok,
        json!({
            "result": "ok",
            "target": req.target,
            "token": token,
            "expires_in_seconds": token.as_ref().map(|_| checked.cfg.token_ttl.as_secs_f64()),
            "select": req.select,
            "finding": finding_json,
            "count": listed.len(),
            "connections": listed,
            "left_out": left_out,
            "set": set_json,
            "notes": notes,
        }),
    ))
}

/// The checks before Redis is asked anything: the gate, the values against their bounds, a
/// selector or a setting, the finding the selector names, the preview rate.
fn check(
    store: &Store,
    hub: &ReliefHub,
    user: Option<&str>,
    req: &PreviewRequest,
    audit: &mut AuditRecord,
) -> Result<Checked, Refusal> {
    let (cfg, handle) = hub.authorize(user, &req.target)?;
    let set = check_set(&req.set, &cfg, handle.poll_interval)?;
    audit.set = set
        .iter()
        .map(|(p, v)| format!("{}={v}", p.redis_name()))
        .collect();
    if req.select.is_empty() && set.is_empty() {
        return Err(refuse(
            Outcome::Invalid,
            "nothing to do: give a selector (addr, name, lib, user, min_idle_seconds, finding) and/or set",
        ));
    }
    let found = match &req.select.finding {
        Some(name) => Some(finding(store, &req.target, name)?),
        None => None,
    };
    audit.finding = found.as_ref().map(|(c, _)| c.as_str());
    let criteria = Criteria::new(&req.select, found).map_err(|m| refuse(Outcome::Invalid, m))?;
    let limit = cfg.max_previews_per_target_per_minute;
    hub.admit(&req.target, Action::Preview, limit).map_err(|wait| {
        refuse(
            Outcome::RateLimited,
            format!("more than relief.max_previews_per_target_per_minute ({limit}) previews on this target in the last minute: retry in {} s", wait.as_secs() + 1),
        )
    })?;
    Ok(Checked {
        cfg,
        handle,
        set,
        criteria,
    })
}

/// On the held connection: the current values of the parameters to set, and (when there is a
/// selector) the exporter's own id and a fresh CLIENT LIST.
async fn snapshot(checked: &Checked, wants_list: bool) -> Result<Snapshot, Refusal> {
    let params: Vec<Param> = checked.set.iter().map(|(p, _)| *p).collect();
    on_poller(&checked.handle, move |c| {
        Box::pin(async move {
            let mut current = Vec::new();
            for p in params {
                current.push((p, config_get(c, p).await));
            }
            let (own, reply) = if wants_list {
                (own_id(c).await?, client_list(c, None).await?)
            } else {
                (None, String::new())
            };
            Ok(Snapshot {
                own,
                reply,
                current,
            })
        })
    })
    .await
}

/// The snapshot's connections the criteria close, and the count of those they protect.
fn select(snap: &Snapshot, criteria: &Criteria) -> Selection {
    let mut s = Selection::default();
    Parser::new().each_entry(&snap.reply, |e| {
        s.lib_names |= e.lib_name.is_some();
        match criteria.verdict(e, snap.own) {
            Verdict::NoMatch => {}
            Verdict::Protected(p) => *s.left_out.entry(p.as_str()).or_insert(0) += 1,
            Verdict::Close => {
                let (Some(id), Some(age)) = (e.id, e.age) else {
                    *s.left_out.entry(Protected::NoId.as_str()).or_insert(0) += 1;
                    return;
                };
                s.conns.push(Previewed {
                    id,
                    addr: e.addr.to_string(),
                    age,
                });
                s.listed.push(json!({
                    "id": id,
                    "addr": shown(e.addr),
                    "name": shown(e.name.unwrap_or("")),
                    "user": shown(e.user.unwrap_or("")),
                    "lib": shown(e.lib_name.unwrap_or("")),
                    "age_seconds": age,
                    "idle_seconds": e.idle,
                    "flags": shown(e.flags.unwrap_or("")),
                    "cmd": shown(e.cmd.unwrap_or("")),
                }));
            }
        }
    });
    s
}

/// What the operator should know about the selection: a `lib` the server cannot match, and
/// the pub/sub and blocked connections left alone.
fn notes(req: &PreviewRequest, selection: &Selection, wants_list: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if req.select.lib.is_some() && !selection.lib_names && wants_list {
        notes.push(
            "this server does not report lib-name (Redis 7.2+, Valkey 8+): `lib` matches nothing"
                .to_string(),
        );
    }
    for (what, flag) in [("pubsub", "include_pubsub"), ("blocked", "include_blocked")] {
        if let Some(n) = selection.left_out.get(what) {
            notes.push(format!(
                "{n} {what} connection(s) matched but are left alone: add {flag} to close them"
            ));
        }
    }
    notes
}

/// The settings as the answer shows them: value, when it runs, the current value (or why it
/// could not be read).
fn set_json(set: &[(Param, i64)], current: &[(Param, Result<Option<i64>, String>)]) -> Vec<Json> {
    set.iter()
        .map(|(p, v)| {
            let now = current.iter().find(|(q, _)| q == p).map(|(_, c)| c.clone());
            let mut o = json!({
                "parameter": p.key(),
                "value": v,
                "when": if p.before_kills() { "before the kills" } else { "after the kills" },
            });
            match now {
                Some(Ok(c)) => o["current"] = json!(c),
                Some(Err(e)) => {
                    o["current"] = Json::Null;
                    o["warning"] = json!(format!(
                        "CONFIG GET failed ({e}): CONFIG SET will likely fail too"
                    ));
                }
                None => {}
            }
            o
        })
        .collect()
}

/// Up to `MAX_SHOWN` bytes of a string from Redis, cut at a character boundary.
fn shown(s: &str) -> String {
    if s.len() <= MAX_SHOWN {
        return s.to_string();
    }
    let mut end = MAX_SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn new_token() -> Result<String, Refusal> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| {
        refuse(
            Outcome::Failed,
            format!("no random numbers from the operating system: {e}"),
        )
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Checks the requested CONFIG SETs against the bounds, in the order an action runs them.
fn check_set(
    set: &BTreeMap<String, i64>,
    cfg: &ReliefConfig,
    poll_interval: Duration,
) -> Result<Vec<(Param, i64)>, Refusal> {
    let mut out = Vec::new();
    for (k, v) in set {
        let p = Param::parse(k).ok_or_else(|| {
            refuse(
                Outcome::Invalid,
                format!(
                    "relief cannot set `{}`: only maxclients, timeout and tcp_keepalive",
                    clean(k, 64)
                ),
            )
        })?;
        let Some((lo, hi)) = cfg.bounds.get(&p) else {
            return Err(refuse(
                Outcome::OutOfBounds,
                format!(
                    "{} cannot be set: relief.config_set_bounds.{} is not configured",
                    p.redis_name(),
                    p.key()
                ),
            ));
        };
        if !(lo..=hi).contains(&v) {
            return Err(refuse(
                Outcome::OutOfBounds,
                format!(
                    "{} {v} is outside relief.config_set_bounds.{} [{lo}, {hi}]",
                    p.redis_name(),
                    p.key()
                ),
            ));
        }
        // Redis would close the exporter's own connection between two polls, and with it the
        // one way in while the server is full.
        let floor = 2 * poll_interval.as_secs().max(1);
        if p == Param::Timeout && *v > 0 && (*v as u64) < floor {
            return Err(refuse(
                Outcome::OutOfBounds,
                format!("timeout {v} is shorter than twice this target's poll interval ({floor} s): Redis would close the exporter's own held connection between polls"),
            ));
        }
        if !out.iter().any(|(q, _)| *q == p) {
            out.push((p, *v));
        }
    }
    out.sort();
    Ok(out)
}

/// The finding a selector names, from the target's current diagnosis.
fn finding(
    store: &Store,
    target: &str,
    name: &str,
) -> Result<(Cause, crate::diagnose::Selector), Refusal> {
    let report = store
        .get(target)
        .and_then(|s| s.diagnosis.clone())
        .ok_or_else(|| refuse(Outcome::Invalid, "this target has no diagnosis yet"))?;
    let f = if name == "top" {
        report.top_cause().ok_or_else(|| {
            refuse(
                Outcome::Invalid,
                "the diagnosis has no finding at or above the cause threshold",
            )
        })?
    } else {
        report
            .findings
            .iter()
            .find(|f| f.cause.as_str() == name)
            .ok_or_else(|| {
                refuse(
                    Outcome::Invalid,
                    format!("the current diagnosis has no `{}` finding", clean(name, 64)),
                )
            })?
    };
    let sel = f.selector.clone().ok_or_else(|| {
        refuse(
            Outcome::Invalid,
            format!(
                "the `{}` finding blames no connections (its fix is configuration or the client service)",
                f.cause.as_str()
            ),
        )
    })?;
    Ok((f.cause, sel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_shown_by_prefix_only() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 random bytes, base64url");
    }

    #[test]
    fn set_values_are_checked_against_bounds_and_the_poll_interval() {
        let cfg = ReliefConfig {
            bounds: [
                (Param::Timeout, (0, 3600)),
                (Param::Maxclients, (100, 20_000)),
            ]
            .into_iter()
            .collect(),
            ..ReliefConfig::default()
        };
        let set = |pairs: &[(&str, i64)]| {
            check_set(
                &pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                &cfg,
                Duration::from_secs(1),
            )
            .map_err(|r| (r.outcome, r.message))
        };
        assert_eq!(
            set(&[("maxclients", 200), ("timeout", 30)]).expect("ok"),
            vec![(Param::Timeout, 30), (Param::Maxclients, 200)],
            "timeout first"
        );
        assert_eq!(
            set(&[("maxclients", 50)]).expect_err("low").0,
            Outcome::OutOfBounds
        );
        let (o, m) = set(&[("tcp_keepalive", 60)]).expect_err("no bounds");
        assert!(
            o == Outcome::OutOfBounds && m.contains("relief.config_set_bounds.tcp_keepalive"),
            "{m}"
        );
        assert_eq!(
            set(&[("save", 1)]).expect_err("unknown").0,
            Outcome::Invalid
        );
        let (o, m) = set(&[("timeout", 1)]).expect_err("below two polls");
        assert!(
            o == Outcome::OutOfBounds && m.contains("own held connection"),
            "{m}"
        );
        set(&[("timeout", 0)]).expect("0 = never is allowed by these bounds");
    }
}
