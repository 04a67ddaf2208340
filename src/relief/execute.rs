//! `execute`: runs a previewed action, once, within its token's life, on the held connection:
//! the `CONFIG SET`s that go first, the re-check of every previewed connection, the pipelined
//! kills, the `CONFIG SET`s that go last.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::held::{client_list, config_get, config_set, on_poller, own_id};
use super::hub::{Pending, Previewed};
use super::{clean, refuse, AuditRecord, Outcome, Param, Refusal, ReliefHub, Verdict};
use crate::redis::client_list::Parser;
use crate::redis::connection::{Conn, ErrorKind, PollError, Stage};
use crate::redis::resp::{Arg, Value};

/// `POST /relief/execute`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    pub target: String,
    pub token: String,
}

/// What the execute job did.
#[derive(Debug, Default, Serialize)]
struct Executed {
    closed: Vec<u64>,
    skipped: Vec<Skipped>,
    set: Vec<SetResult>,
    connected_clients_after: Option<u64>,
    /// The Redis error that stopped the action part-way, if any.
    error: Option<String>,
    /// Whether anything had changed when `error` happened.
    changed: bool,
}

#[derive(Debug, Serialize)]
struct Skipped {
    id: u64,
    reason: &'static str,
}

#[derive(Debug, Serialize)]
struct SetResult {
    parameter: &'static str,
    value: i64,
    previous: Option<i64>,
    applied: bool,
}

/// Runs the action a token stands for, for `user`; `audit` learns what it did.
pub async fn execute(
    hub: &ReliefHub,
    user: Option<&str>,
    req: ExecuteRequest,
    audit: &mut AuditRecord,
) -> Result<(Outcome, Json), Refusal> {
    audit.target = Some(req.target.clone());
    audit.token = Some(req.token.clone());
    let (cfg, handle) = hub.authorize(user, &req.target)?;
    let pending = hub.redeem(
        &req.token,
        &req.target,
        user.unwrap_or_default(),
        cfg.max_actions_per_target_per_minute,
    )?;
    audit.select = serde_json::to_string(&pending.select).ok();
    audit.finding = pending.criteria.finding.as_ref().map(|(c, _)| c.as_str());
    audit.listed = Some(pending.conns.len());
    let done = on_poller(&handle, move |c| {
        Box::pin(async move { Ok(run_action(c, pending).await) })
    })
    .await?;
    audit.closed = done.closed.clone();
    audit.skipped = done.skipped.len();
    audit.set = done
        .set
        .iter()
        .map(|s| match (s.applied, s.previous) {
            (true, Some(p)) => format!("{}={} (was {p})", s.parameter, s.value),
            (true, None) => format!("{}={}", s.parameter, s.value),
            (false, _) => format!("{}={} (failed)", s.parameter, s.value),
        })
        .collect();
    let outcome = match (&done.error, done.changed) {
        (None, _) => Outcome::Ok,
        (Some(_), true) => Outcome::Partial,
        (Some(e), false) => {
            return Err(refuse(Outcome::Failed, format!("{e}: nothing was changed")))
        }
    };
    let mut body = serde_json::to_value(&done).unwrap_or_default();
    body["result"] = json!(outcome.as_str());
    body["target"] = json!(req.target);
    body["closed_count"] = json!(done.closed.len());
    if let Some(e) = &done.error {
        // Say it in the audit line too.
        audit.set.push(format!("error: {}", clean(e, 200)));
    }
    Ok((outcome, body))
}

/// On the held connection: CONFIG SETs that go first, the re-check, the kills, the CONFIG SETs
/// that go last. Every previewed connection is closed only if it is still the same connection
/// (same address, not younger) and still matches the selector and no protection.
async fn run_action(c: &mut Conn, pending: Pending) -> Executed {
    let mut done = Executed::default();
    for (param, value) in pending.set.iter().filter(|(q, _)| q.before_kills()) {
        let previous = config_get(c, *param).await.ok().flatten();
        if let Err(e) = config_set(c, *param, *value).await {
            done.error = Some(format!("CONFIG SET {} {value}: {e}", param.redis_name()));
            return done;
        }
        done.changed = true;
        done.set.push(SetResult {
            parameter: param.key(),
            value: *value,
            previous,
            applied: true,
        });
    }
    let Some(kill) = recheck(c, &pending, &mut done).await else {
        return done;
    };
    if !kill_all(c, &kill, &mut done).await {
        return done;
    }
    for (param, value) in pending.set.iter().filter(|(q, _)| !q.before_kills()) {
        set_after_kills(c, *param, *value, &mut done).await;
    }
    if let Ok(Value::String(info)) = c.command(Stage::Info, &["INFO", "clients"]).await {
        done.connected_clients_after = crate::redis::info::Info::parse(&info)
            .connected_clients
            .map(|v| v as u64);
    }
    done
}

/// The previewed connections still to close: each is read again (CLIENT LIST ID, or a full
/// list on servers before 6.2) and kept only if it is the same connection and still matches;
/// the others are skipped with their reason. `None` when the re-read failed (said in `done`).
async fn recheck<'p>(
    c: &mut Conn,
    pending: &'p Pending,
    done: &mut Executed,
) -> Option<Vec<&'p Previewed>> {
    if pending.conns.is_empty() {
        return Some(Vec::new());
    }
    let ids: Vec<u64> = pending.conns.iter().map(|c| c.id).collect();
    let fresh = async {
        let own = own_id(c).await?;
        // CLIENT LIST ID (6.2+) costs a microsecond per listed id where a full list holds
        // Redis' main thread for every client; older servers answer a syntax error.
        let reply = match client_list(c, Some(&ids)).await {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::Other => client_list(c, None).await?,
            Err(e) => return Err(e),
        };
        Ok::<_, PollError>((own, reply))
    };
    let (own, reply) = match fresh.await {
        Ok(v) => v,
        Err(e) => {
            done.error = Some(format!("re-reading the connections: {e}"));
            return None;
        }
    };
    let mut now: HashMap<u64, (String, Option<u64>, Verdict)> = HashMap::new();
    Parser::new().each_entry(&reply, |e| {
        if let Some(id) = e.id {
            let verdict = pending.criteria.verdict(e, own);
            now.insert(id, (e.addr.to_string(), e.age, verdict));
        }
    });
    let mut kill = Vec::new();
    for prev in &pending.conns {
        let reason = match now.get(&prev.id) {
            None => Some("gone"),
            Some((addr, age, _)) if *addr != prev.addr || age.is_none_or(|a| a < prev.age) => {
                Some("not the same connection")
            }
            Some((_, _, v)) if *v != Verdict::Close => Some("no longer matches"),
            _ => None,
        };
        match reason {
            Some(reason) => done.skipped.push(Skipped {
                id: prev.id,
                reason,
            }),
            None => kill.push(prev),
        }
    }
    Some(kill)
}

/// Closes `kill`, pipelined on the held connection. False when the action must stop here (not
/// every kill was sent, or the connection failed part-way).
async fn kill_all(c: &mut Conn, kill: &[&Previewed], done: &mut Executed) -> bool {
    if kill.is_empty() {
        return true;
    }
    // Redis 7.0's CLIENT KILL ID takes one id: one command per connection, pipelined on the
    // held connection. ADDR makes Redis itself check it is still the same connection.
    c.settle();
    let mut sent = 0;
    for k in kill {
        let args = [
            Arg::Str("CLIENT"),
            Arg::Str("KILL"),
            Arg::Str("ID"),
            Arg::Int(k.id),
            Arg::Str("ADDR"),
            Arg::Str(&k.addr),
            Arg::Str("SKIPME"),
            Arg::Str("yes"),
        ];
        if let Err(e) = c.send(Stage::ClientId, args).await {
            done.error = Some(format!("CLIENT KILL: {e}"));
            break;
        }
        sent += 1;
    }
    for k in &kill[..sent] {
        match c.recv(Stage::ClientId).await {
            Ok(v) if v.as_u64() == Some(1) => done.closed.push(k.id),
            Ok(_) => done.skipped.push(Skipped {
                id: k.id,
                reason: "gone",
            }),
            Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Connect) => {
                // Some may have been closed: the next poll shows it.
                done.changed = true;
                done.error = Some(format!("CLIENT KILL: {e}"));
                return false;
            }
            Err(e) => {
                done.skipped.push(Skipped {
                    id: k.id,
                    reason: "refused",
                });
                done.error
                    .get_or_insert_with(|| format!("CLIENT KILL: {e}"));
            }
        }
    }
    done.changed |= !done.closed.is_empty();
    sent == kill.len()
}

/// A `CONFIG SET` that goes after the kills (`maxclients`): a failure is recorded and the
/// action goes on.
async fn set_after_kills(c: &mut Conn, param: Param, value: i64, done: &mut Executed) {
    let previous = config_get(c, param).await.ok().flatten();
    let applied = match config_set(c, param, value).await {
        Ok(()) => {
            done.changed = true;
            true
        }
        Err(e) => {
            done.error
                .get_or_insert_with(|| format!("CONFIG SET {} {value}: {e}", param.redis_name()));
            false
        }
    };
    done.set.push(SetResult {
        parameter: param.key(),
        value,
        previous,
        applied,
    });
}
