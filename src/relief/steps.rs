//! The `relieve` step relief adds to the daemon's diagnosis: the command that does a
//! finding's fix through the exporter's held connection, read from the finding's typed steps.

use std::collections::BTreeMap;

use super::Param;
use crate::diagnose::{Cause, Finding, Relieve, Remedy, Step};

/// The `relieve` step for one finding: `--finding CAUSE` for one that blames connections
/// (with the opt-in its connections need), `--set` for each of its `CONFIG SET`s that the
/// configured bounds allow. Every value is shell-quoted. `None` when relief cannot do its fix.
pub fn step(
    exporter: &str,
    target: &str,
    f: &Finding,
    bounds: &BTreeMap<Param, (i64, i64)>,
) -> Option<Step> {
    let mut does = Vec::new();
    let finding = f.selector.as_ref().map(|sel| (f.cause, sel.only));
    if finding.is_some() {
        does.push("lists the exact connections this finding blames".to_string());
    }
    let mut sets: Vec<(Param, i64)> = Vec::new();
    for s in &f.remediation {
        let Remedy::SetParam { param, value } = s.remedy else {
            continue;
        };
        let Some(&(lo, hi)) = bounds.get(&param) else {
            continue;
        };
        // A timeout that holds against a leak's pace holds shorter too: above the bounds, the
        // highest allowed. Below them, none relief may set holds: the finding says what does.
        let value = if param == Param::Timeout && value > hi && hi > 0 {
            hi
        } else {
            value
        };
        if param == Param::Timeout && value < lo && f.cause == Cause::ConnectionLeak {
            does.push(format!(
                "not CONFIG SET timeout {value}: below relief.config_set_bounds.timeout [{lo}, {hi}], and a longer timeout would not hold against this leak's pace"
            ));
            continue;
        }
        if (lo..=hi).contains(&value) && !sets.iter().any(|(q, _)| *q == param) {
            sets.push((param, value));
        }
    }
    for (p, v) in &sets {
        does.push(format!("CONFIG SET {} {v}", p.redis_name()));
    }
    if does.is_empty() {
        return None;
    }
    Some(Step::relieve(
        format!(
            "Works while the server is full, unlike the redis-cli commands (they need a new connection, which a full server refuses): the exporter acts through the connection it already holds. This previews what it would do ({}), changing nothing; add --execute to do it. Needs a relief user (RELIEVE_USER and RELIEVE_PASSWORD_FILE); see docs/relief.md.",
            does.join("; ")
        ),
        Relieve {
            exporter: exporter.to_string(),
            target: target.to_string(),
            finding,
            sets,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::shell::quote;
    use crate::diagnose::{Cause, CloseBy, Evidence, Only, Selector};

    fn finding(cause: Cause, only: Option<Only>, sets: &[(Param, i64)]) -> Finding {
        let selector = only.map(|only| Selector {
            group: crate::analysis::aggregate::Dimension::ClientName,
            key: "x".into(),
            only,
            idle_seconds: 60,
            sources: String::new(),
        });
        let mut remediation: Vec<Step> = selector
            .iter()
            .map(|s| Step::close("w", "redis-cli -p 1", s.clone(), CloseBy::Reselect))
            .collect();
        remediation.extend(
            sets.iter()
                .map(|&(p, v)| Step::set_param("w", "redis-cli -p 1", p, v)),
        );
        Finding {
            cause,
            title: "t".into(),
            confidence: 0.9,
            severity: 1.0,
            score: 0.9,
            threat: String::new(),
            culprit: None,
            summary: String::new(),
            evidence: vec![Evidence {
                what: "w".into(),
                value: "v".into(),
            }],
            remediation,
            selector,
        }
    }

    #[test]
    fn the_relieve_step_is_quoted_and_asks_only_what_bounds_allow() {
        let hostile = "x';touch${IFS}/tmp/P;echo'";
        let bounds: BTreeMap<Param, (i64, i64)> =
            [(Param::Timeout, (30, 3600))].into_iter().collect();
        let f = finding(
            Cause::ConnectionLeak,
            Some(Only::Idle),
            &[(Param::Timeout, 300)],
        );
        let s = step("http://127.0.0.1:9816", hostile, &f, &bounds).expect("a step");
        let cmd = s.command().expect("command").to_string();
        assert_eq!(
            cmd,
            format!("redis-clients-exporter relieve --exporter http://127.0.0.1:9816 --target {} --finding connection_leak --set timeout=300", quote(hostile))
        );
        assert!(
            s.why.contains("Works while the server is full"),
            "{}",
            s.why
        );
        // Out of bounds or without bounds: not offered. Nothing to do: no step.
        let f = finding(Cause::MaxclientsTooLow, None, &[(Param::Maxclients, 20000)]);
        assert!(step("u", "t", &f, &bounds).is_none());
        let f = finding(Cause::RiskyConfig, None, &[(Param::Timeout, 5)]);
        assert!(step("u", "t", &f, &bounds).is_none());
        let f = finding(Cause::StalePubsub, Some(Only::IdlePubsub), &[]);
        let cmd = step("u", "t", &f, &bounds)
            .and_then(|s| s.command().map(str::to_string))
            .expect("cmd");
        assert!(
            cmd.ends_with("--finding stale_pubsub --include-pubsub"),
            "{cmd}"
        );
        let f = finding(Cause::BlockedClients, Some(Only::Blocked), &[]);
        let cmd = step("u", "t", &f, &bounds)
            .and_then(|s| s.command().map(str::to_string))
            .expect("cmd");
        assert!(
            cmd.ends_with("--finding blocked_clients --include-blocked"),
            "{cmd}"
        );
    }
}
