use super::*;
use crate::analysis::aggregate::Aggregator;
use crate::redis::client_list::ClientEntry;

fn line(id: u32, ip: &str, name: &str, age: u64, idle: u64, flags: &str, extra: &str) -> String {
    format!("id={id} addr={ip}:{} fd=8 name={name} age={age} idle={idle} flags={flags} db=0 omem=0 tot-mem=1000 cmd=get user=default {extra}\n", 40000 + id)
}

/// A connection that never ran a command.
fn null(id: u32, ip: &str, name: &str, age: u64, idle: u64) -> String {
    line(id, ip, name, age, idle, "N", "").replace("cmd=get", "cmd=NULL")
}

/// The exporter's own connection.
fn own(id: u32, ip: &str) -> String {
    line(id, ip, CLIENT_NAME, 3, 0, "N", "")
}

fn report_at(
    reply: &str,
    info: &str,
    config: ConfigValues,
    history: &[Sample],
    now: f64,
) -> Report {
    let clients = Aggregator::new(60).summarize(reply, 20);
    let info = Info::parse(info);
    let obs = Observation {
        info: &info,
        config: &config,
        clients: &clients,
        idle_threshold_seconds: 60,
    };
    diagnose("t", &obs, history, now, "redis-cli -p 1")
}

fn report(reply: &str, info: &str, config: ConfigValues, history: &[Sample]) -> Report {
    report_at(reply, info, config, history, 1000.0)
}

/// INFO of a server with `n` clients.
fn info(n: usize) -> String {
    format!("redis_version:7.0.15\nconnected_clients:{n}\n")
}

fn cfg(maxclients: f64) -> ConfigValues {
    ConfigValues {
        available: true,
        maxclients: Some(maxclients),
        timeout: Some(300.0),
        tcp_keepalive: Some(300.0),
        maxmemory_clients: None,
    }
}

fn first(r: &Report) -> (&str, Option<&str>) {
    let f = &r.findings[0];
    (f.cause.as_str(), f.culprit.as_deref())
}

fn finding(r: &Report, cause: Cause) -> Option<&Finding> {
    r.findings.iter().find(|f| f.cause == cause)
}

#[test]
fn leak_names_the_idle_source() {
    let mut r = String::new();
    for i in 0..150 {
        r += &line(i, "10.0.0.9", "", 900, 800, "N", "");
    }
    for i in 150..170 {
        r += &line(i, "10.0.0.1", "api", 900, 0, "N", "");
    }
    let rep = report(&r, &info(170), cfg(200.0), &[]);
    assert_eq!(first(&rep), ("connection_leak", Some("source_ip 10.0.0.9")));
    assert!(rep.findings[0].confidence >= 0.5, "{:?}", rep.findings[0]);
    assert_eq!(rep.status, Status::Warning);
    // The short command first, the redis-cli-only pipeline as its fallback.
    let step = &rep.findings[0].remediation[0];
    assert!(step
        .command()
        .is_some_and(|c| c.starts_with("redis-clients-exporter close -p 1 --source-ip 10.0.0.9 ")));
    let kill = step.fallback().unwrap_or_default().to_string();
    assert!(
        kill.contains("K=10.0.0.9 awk") && kill.contains("CLIENT KILL ID"),
        "{kill}"
    );
}

#[test]
fn healthy_server_has_no_cause() {
    let mut r = String::new();
    for i in 0..20 {
        r += &line(i, &format!("10.0.0.{}", i % 3), "api", 900, 0, "N", "");
    }
    let rep = report(&r, &info(20), cfg(10000.0), &[]);
    assert_eq!(rep.status, Status::Healthy, "{rep:#?}");
    assert!(rep.top_cause().is_none());
    assert!(rep.headline.starts_with("HEALTHY"));
    assert_eq!(rep.exported(), ("none", 0.0));
}

/// 32 pods of one unnamed service on one /24, each with 5 busy and 13 leaked connections;
/// 8 of them for 15 minutes, 24 for 100 s: the runbooks' fleet-wide leak after a scale-out.
fn fleet_leak(maxclients: f64, with_own: bool) -> Report {
    let mut r = String::new();
    let mut id = 0;
    for pod in 0..32u32 {
        let ip = format!("10.1.2.{}", pod + 2);
        let age = if pod < 8 { 900 } else { 100 };
        for _ in 0..5 {
            id += 1;
            r += &line(id, &ip, "", age, 0, "N", "");
        }
        for _ in 0..13 {
            id += 1;
            r += &null(id, &ip, "", age, age - 5);
        }
    }
    if with_own {
        r += &own(9999, "10.1.2.1");
    }
    report(&r, &info(577), cfg(maxclients), &[])
}

#[test]
fn a_leak_spread_over_a_fleet_is_one_leak() {
    let rep = fleet_leak(600.0, true);
    assert_eq!(
        first(&rep),
        ("connection_leak", Some("address_prefix 10.1.2.0/24")),
        "{rep:#?}"
    );
    let leak = &rep.findings[0];
    assert!(leak.confidence >= 0.6, "{leak:#?}");
    assert_eq!(rep.status, Status::Critical);
    // The scale-out that amplified it is seen, below it; maxclients is not the cause.
    let scale = finding(&rep, Cause::ScaleOut).expect("the scale-out is seen");
    assert!(scale.score < leak.score, "{rep:#?}");
    assert!(
        finding(&rep, Cause::MaxclientsTooLow).is_none_or(|m| m.score < 0.5),
        "{rep:#?}"
    );
    // The selector means exactly the leaked connections.
    let sel = leak.selector.as_ref().expect("a selector");
    assert_eq!(
        (sel.group, sel.key.as_str()),
        (Dimension::AddressPrefix, "10.1.2.0/24")
    );
    let hit = |l: String| ClientEntry::parse(l.trim_end()).is_ok_and(|e| sel.matches(&e));
    assert!(hit(null(1, "10.1.2.7", "", 900, 895)));
    assert!(!hit(line(2, "10.1.2.7", "", 900, 0, "N", "")));
    assert!(!hit(null(3, "10.1.22.7", "", 900, 895)));
}

#[test]
fn a_leak_is_found_by_client_library_across_subnets() {
    // Redis 7.2+: one library leaks from pods on four /24s, every connection unnamed.
    let mut r = String::new();
    let mut id = 0;
    for pod in 0..16u32 {
        let ip = format!("10.{}.0.{}", pod % 4, pod + 2);
        for i in 0..8 {
            id += 1;
            let (idle, lib) = if i < 2 {
                (0, "go-redis")
            } else {
                (600, "jedis")
            };
            r += &line(
                id,
                &ip,
                "",
                900,
                idle,
                "N",
                &format!("lib-name={lib} lib-ver=1"),
            );
        }
    }
    let rep = report(&r, &info(128), cfg(150.0), &[]);
    assert_eq!(
        first(&rep),
        ("connection_leak", Some("lib_name jedis")),
        "{rep:#?}"
    );
    let cmd = rep.findings[0].remediation[0]
        .fallback()
        .unwrap_or_default()
        .to_string();
    assert!(cmd.contains("K=jedis") && cmd.contains("lib-name"), "{cmd}");
}

/// `old` pods for an hour and `young` pods for 40 s, each with `pool` busy connections; the
/// exporter's own connection from its own address.
fn fleet(old: u32, young: u32, pool: u32, name: &str) -> String {
    let mut r = String::new();
    let mut id = 0;
    for pod in 0..old + young {
        let ip = format!("10.2.{}.{}", pod / 200, pod % 200 + 2);
        let age = if pod < old { 3600 } else { 40 };
        for _ in 0..pool {
            id += 1;
            r += &line(id, &ip, name, age, 0, "N", "");
        }
    }
    r + &own(99_999, "10.9.9.9")
}

#[test]
fn a_scale_out_before_the_first_sample_is_read_from_ages() {
    // 5 -> 20 pods × 48 at maxclients 1000, no history at all (the command, or a daemon that
    // restarted in the middle of it).
    let r = fleet(5, 15, 48, "orders");
    let rep = report(&r, &info(961), cfg(1000.0), &[]);
    assert_eq!(
        first(&rep),
        ("scale_out", Some("client_name orders")),
        "{rep:#?}"
    );
    let f = &rep.findings[0];
    assert!(f.confidence >= 0.8, "{f:#?}");
    assert!(f.score > finding(&rep, Cause::MaxclientsTooLow).map_or(0.0, |m| m.score));
    assert_eq!(rep.status, Status::Critical);
    // 20 instances: the exporter's own address is not one. 80% of 1000 / 20 = 40.
    let text = format!("{:?}", f);
    assert!(text.contains("20 × 48.0 = 960"), "{text}");
    assert!(text.contains("pool at 40 connections"), "{text}");
    assert_eq!(rep.server.instances, 20);
    assert_eq!(rep.server.distinct_sources, 21);
}

#[test]
fn history_that_saw_no_growth_refutes_a_scale_out() {
    // The ages show 15 new pods, but 100 s ago (before they appeared) there were 20 already:
    // a rolling deploy replaced them.
    let r = fleet(5, 15, 48, "orders");
    let clients = Aggregator::new(60).summarize(&r, 20);
    let inf = Info::parse(&info(961));
    let mut then = Sample::new(900.0, &inf, &clients, None);
    then.instances = 20;
    let now_sample = Sample::new(1000.0, &inf, &clients, Some(&then));
    let rep = report(&r, &info(961), cfg(1000.0), &[then, now_sample]);
    let scale = finding(&rep, Cause::ScaleOut).expect("still a pattern");
    assert!(scale.confidence < 0.5, "{scale:#?}");
}

#[test]
fn an_autoscale_on_a_quiet_server_is_healthy() {
    // 5 -> 20 pods at 2%: the pattern is there, the threat is not.
    let r = fleet(5, 15, 10, "web");
    let rep = report(&r, &info(201), cfg(10000.0), &[]);
    assert_eq!(rep.status, Status::Healthy, "{rep:#?}");
    let scale = finding(&rep, Cause::ScaleOut).expect("the pattern is seen");
    assert!(scale.confidence >= 0.7 && scale.score < 0.05, "{scale:#?}");
    assert!(rep.findings.iter().all(|f| f.score < 0.5));
    assert!(rep
        .headline
        .contains("No cause of connection exhaustion found"));
    assert!(rep.headline.contains("scale_out"), "{}", rep.headline);
    assert_eq!(rep.exported(), ("none", 0.0));
    // No threat, no commands.
    for f in &rep.findings {
        assert!(
            f.remediation.iter().all(|s| s.command().is_none()),
            "{f:#?}"
        );
        assert!(f.selector.is_none());
    }
}

#[test]
fn a_pool_with_warm_spares_at_one_percent_is_healthy() {
    // One shared host: a 60-connection pool, 40 idle by design, beside 30 busy.
    let mut r = String::new();
    for i in 0..60 {
        let idle = if i < 40 { 3000 } else { 0 };
        r += &line(i, "10.3.0.2", "", 86_400, idle, "N", "");
    }
    for i in 60..90 {
        r += &line(i, "10.3.0.3", "api", 86_400, 0, "N", "");
    }
    let rep = report(&r, &info(90), cfg(10000.0), &[]);
    assert_eq!(rep.status, Status::Healthy, "{rep:#?}");
    assert!(rep.findings.iter().all(|f| f.score < 0.05), "{rep:#?}");
    // The idle spares are seen, and nothing offers to close them.
    let leak = finding(&rep, Cause::ConnectionLeak).expect("the pattern is listed");
    assert!(leak.selector.is_none(), "{leak:#?}");
    assert!(
        leak.remediation.iter().all(|s| s.command().is_none()),
        "{leak:#?}"
    );
    assert!(
        leak.remediation[0].why.starts_with("No threat"),
        "{leak:#?}"
    );
}

#[test]
fn the_limit_is_the_cause_when_used_connections_fill_it() {
    let mut r = String::new();
    for i in 0..60 {
        r += &line(i, &format!("10.4.0.{}", i % 3 + 2), "api", 300, 0, "N", "");
    }
    let rep = report(&r, &info(60), cfg(64.0), &[]);
    assert_eq!(first(&rep), ("maxclients_too_low", None), "{rep:#?}");
    assert!(rep.findings[0].score >= 0.7, "{rep:#?}");
    assert_eq!(rep.status, Status::Critical);
    let steps = format!("{:?}", rep.findings[0].remediation);
    assert!(steps.contains("CONFIG SET maxclients 10000"), "{steps}");
    assert!(steps.contains("works at runtime when"), "{steps}");
}

#[test]
fn a_clamped_limit_says_config_set_cannot_work_yet() {
    let mut r = String::new();
    for i in 0..900 {
        r += &line(i, &format!("10.5.0.{}", i % 20 + 2), "api", 300, 0, "N", "");
    }
    let rep = report(&r, &info(900), cfg(992.0), &[]);
    assert_eq!(first(&rep), ("maxclients_too_low", None), "{rep:#?}");
    let steps = format!("{:?}", rep.findings[0].remediation);
    assert!(steps.contains("fails now"), "{steps}");
    assert!(steps.contains("LimitNOFILE=10032"), "{steps}");
    assert!(steps.contains("prlimit --pid"), "{steps}");
}

#[test]
fn a_low_limit_filled_by_a_leak_is_a_leak() {
    let mut r = String::new();
    for i in 0..85 {
        r += &line(i, "10.6.0.5", "", 900, 800, "N", "");
    }
    for i in 85..95 {
        r += &line(i, "10.6.0.2", "api", 900, 0, "N", "");
    }
    let rep = report(&r, &info(95), cfg(100.0), &[]);
    assert_eq!(first(&rep), ("connection_leak", Some("source_ip 10.6.0.5")));
    let m = finding(&rep, Cause::MaxclientsTooLow).expect("the low limit is noted");
    assert!(m.confidence < 0.3, "{m:#?}");
}

#[test]
fn every_leak_fix_carries_timeout_and_keepalive() {
    let mut r = String::new();
    for i in 0..150 {
        r += &line(i, "10.0.0.9", "", 900, 800, "N", "");
    }
    let off = ConfigValues {
        timeout: Some(0.0),
        tcp_keepalive: Some(0.0),
        ..cfg(160.0)
    };
    let rep = report(&r, &info(150), off, &[]);
    let leak = finding(&rep, Cause::ConnectionLeak).expect("a leak");
    let cmds: Vec<&str> = leak
        .remediation
        .iter()
        .filter_map(|s| s.command())
        .collect();
    assert!(
        cmds.iter().any(|c| c.contains("CONFIG SET timeout 300")),
        "{cmds:?}"
    );
    assert!(
        cmds.iter()
            .any(|c| c.contains("CONFIG SET tcp-keepalive 60")),
        "{cmds:?}"
    );
    // They fail loudly when Redis refuses them.
    assert!(
        cmds.iter()
            .all(|c| c.contains("| awk") || c.starts_with("redis-clients-exporter close ")),
        "{cmds:?}"
    );
    // Already on: still part of the fix, as facts.
    let rep = report(&r, &info(150), cfg(160.0), &[]);
    let leak = finding(&rep, Cause::ConnectionLeak).expect("a leak");
    let why: Vec<&str> = leak.remediation.iter().map(|s| s.why.as_str()).collect();
    assert!(
        why.iter().any(|w| w.starts_with("timeout is 300 s")),
        "{why:?}"
    );
    assert!(
        why.iter().any(|w| w.starts_with("tcp-keepalive is 300 s")),
        "{why:?}"
    );
}

fn sample(at: f64, total: f64, rejected: f64, limit: f64) -> Sample {
    // Its counters are in its private block (shared between samples).
    let mut s = Sample::default();
    s.at = at;
    s.with_counters(Some(limit), Some(total), Some(rejected))
}

#[test]
fn churn_survives_a_resetstat() {
    let mut r = String::new();
    for i in 0..10 {
        r += &line(i, "10.7.0.2", "api", 900, 0, "N", "");
    }
    for i in 10..14 {
        r += &line(i, "10.7.0.9", "", 0, 0, "N", "");
    }
    let inf = "redis_version:7.0.15\nconnected_clients:14\ntotal_connections_received:600\n";
    // CONFIG RESETSTAT between the samples: the counter went from 90,000 to 600 in 2 s.
    let h = [
        sample(998.0, 90_000.0, 0.0, 14.0),
        sample(1000.0, 600.0, 0.0, 14.0),
    ];
    let rep = report(&r, inf, cfg(10000.0), &h);
    let churn = finding(&rep, Cause::ConnectionChurn).expect("churn, not a negative rate");
    assert_eq!(rep.server.new_connections_per_second, Some(300.0));
    assert_eq!(churn.culprit.as_deref(), Some("source_ip 10.7.0.9"));
    assert_eq!(first(&rep).0, "connection_churn", "{rep:#?}");
    assert_eq!(rep.status, Status::Warning);
}

#[test]
fn refusals_make_the_server_full_and_the_threat_certain() {
    let mut r = String::new();
    for i in 0..150 {
        r += &line(i, "10.0.0.9", "", 900, 800, "N", "");
    }
    let inf = "redis_version:7.0.15\nconnected_clients:150\nrejected_connections:7\n";
    let h = [
        sample(990.0, 10.0, 2.0, 150.0),
        sample(1000.0, 10.0, 7.0, 150.0),
    ];
    let rep = report(&r, inf, cfg(200.0), &h);
    assert_eq!(rep.status, Status::Full);
    assert!(rep.server.rejecting);
    assert_eq!(rep.findings[0].severity, 1.0, "{rep:#?}");
    // A reset counter still shows refusals since the reset.
    let h = [
        sample(990.0, 10.0, 50.0, 150.0),
        sample(1000.0, 10.0, 3.0, 150.0),
    ];
    let inf = "redis_version:7.0.15\nconnected_clients:150\nrejected_connections:3\n";
    assert_eq!(report(&r, inf, cfg(200.0), &h).status, Status::Full);
}

#[test]
fn sustained_growth_is_a_threat_a_step_is_not() {
    let mut r = String::new();
    for i in 0..300 {
        r += &line(i, "10.0.0.9", "", 900, 0, "N", "");
    }
    // +1 connection per second for 10 minutes toward a limit 1,700 away: full in ~28 min.
    let grow: Vec<Sample> = (0..=10)
        .map(|i| {
            sample(
                400.0 + 60.0 * f64::from(i),
                0.0,
                0.0,
                300.0 + 60.0 * f64::from(i) - 600.0,
            )
        })
        .collect();
    let rep = report(&r, &info(300), cfg(2000.0), &grow);
    assert!(rep
        .server
        .growth_per_second
        .is_some_and(|g| (g - 1.0).abs() < 0.01));
    let sev = rep.findings.first().map_or(0.0, |f| f.severity);
    assert!(sev > 0.5, "{rep:#?}");
    // The same 600 connections added at once, 10 minutes ago: a step, no projected growth.
    let step: Vec<Sample> = (0..=10)
        .map(|i| {
            sample(
                400.0 + 60.0 * f64::from(i),
                0.0,
                0.0,
                if i == 0 { -300.0 } else { 300.0 },
            )
        })
        .collect();
    let rep = report(&r, &info(300), cfg(2000.0), &step);
    assert_eq!(rep.server.growth_per_second, None);
}

#[test]
fn valkey_is_reported_as_valkey_and_its_filters_are_used() {
    let mut r = String::new();
    for i in 0..150 {
        r += &line(i, "10.0.0.9", "", 900, 800, "N", "");
    }
    let valkey8 =
        "redis_version:7.2.4\nserver_name:valkey\nvalkey_version:8.1.8\nconnected_clients:150\n";
    let rep = report(&r, valkey8, cfg(160.0), &[]);
    assert_eq!(rep.server.product, Some("valkey"));
    assert_eq!(rep.server.version.as_deref(), Some("8.1.8"));
    assert_eq!(rep.server.redis_version.as_deref(), Some("7.2.4"));
    let step = &rep.findings[0].remediation[0];
    assert!(
        step.why.contains("Valkey 8.1 has no CLIENT KILL filter"),
        "{step:?}"
    );
    assert!(!format!("{rep:?}").contains("Redis 7.2"), "{rep:#?}");
    let valkey9 = valkey8.replace("8.1.8", "9.1.2");
    let rep = report(&r, &valkey9, cfg(160.0), &[]);
    let cmd = rep.findings[0].remediation[0]
        .fallback()
        .unwrap_or_default()
        .to_string();
    assert!(
        cmd.contains("CLIENT KILL IP 10.0.0.9 IDLE 60 TYPE normal"),
        "{cmd}"
    );
    let rep = report(&r, &info(150), cfg(160.0), &[]);
    assert_eq!(rep.server.product, Some("redis"));
    assert!(rep.findings[0].remediation[0]
        .why
        .contains("Redis 7.0 has no"));
}

#[test]
fn selector_matches_only_its_connections() {
    let s = Selector {
        group: Dimension::SourceIp,
        key: "10.0.0.9".into(),
        only: Only::Idle,
        idle_seconds: 60,
        sources: String::new(),
    };
    let yes = line(1, "10.0.0.9", "", 900, 800, "N", "");
    let busy = line(2, "10.0.0.9", "", 900, 1, "N", "");
    let other = line(3, "10.0.0.90", "", 900, 800, "N", "");
    let sub = line(4, "10.0.0.9", "", 900, 800, "P", "sub=1");
    let hit = |l: &str| ClientEntry::parse(l.trim_end()).is_ok_and(|e| s.matches(&e));
    assert!(hit(&yes));
    assert!(!hit(&busy) && !hit(&other) && !hit(&sub));
}

#[test]
fn unreachable_because_full_says_what_works() {
    let why =
        "Redis is full: it refused the exporter's connection (ERR max number of clients reached).";
    let r = Report::unreachable("t", 0.0, why, "redis-cli");
    assert!(r
        .headline
        .contains("No new connection, so no redis-cli command, can run"));
    assert!(r.headline.contains("relief action"));
    let r = Report::unreachable("t", 0.0, "io error: refused", "redis-cli");
    assert!(!r.headline.contains("No new connection"));
}

/// The ids awk selects from `reply` with a selector's program, as the printed pipeline does.
fn awk_selects(s: &Selector, reply: &str) -> Vec<u64> {
    use std::io::Write;
    let mut child = std::process::Command::new("awk")
        .arg(shell::select_program(&s.awk_condition()))
        .env("K", s.env_key())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("awk");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(reply.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("awk output");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.strip_prefix("CLIENT KILL ID ")
                .and_then(|id| id.parse().ok())
                .expect("a CLIENT KILL ID line")
        })
        .collect()
}

#[test]
fn the_printed_selection_is_the_selector() {
    // Traps: numeric-looking names (awk would compare "0123" and "123" as numbers), idle 9
    // against 10 (as strings "9" >= "10"), a name holding '=', another field holding the
    // name, IPv6, unix sockets, our own connection, pub/sub and blocked ones, addresses that
    // share a prefix's text but not its /24. (A repeated `name=` field, which Redis cannot
    // print, is left out: awk keeps the first, so a later field cannot shadow the real name;
    // the Rust parser keeps the last.)
    let mut r = String::new();
    r += &line(1, "10.0.0.9", "0123", 900, 800, "N", "");
    r += &line(2, "10.0.0.9", "123", 900, 800, "N", "");
    r += &line(3, "10.0.0.9", "0123", 900, 9, "N", "");
    r += &line(4, "10.0.0.9", "a=b", 900, 800, "N", "");
    r += &line(5, "10.0.0.90", "0123", 900, 800, "N", "");
    r += &line(6, "10.0.0.9", "x", 900, 800, "N", "lib-name=0123");
    r += &line(7, "10.0.0.9", CLIENT_NAME, 900, 800, "N", "");
    r += &line(8, "10.0.0.9", "0123", 900, 800, "P", "sub=1");
    r += &line(9, "10.0.0.9", "0123", 900, 800, "b", "");
    r += &line(10, "10.0.0.9", "0123", 900, 800, "N", "").replace("omem=0", "omem=5");
    r += "id=11 addr=[::1]:5000 fd=8 name=v6 age=9 idle=99 flags=N db=0 omem=0 cmd=get\n";
    r += "id=12 addr=/tmp/r.sock:0 fd=8 name=sock age=9 idle=99 flags=U db=0 omem=0 cmd=get\n";
    r += "id=13 addr=::1:5001 fd=8 name=old6 age=9 idle=99 flags=N db=0 omem=0 cmd=get\n";
    r += &line(14, "10.0.01.9", "", 900, 800, "N", "lib-name=123");
    r += &line(15, "110.0.0.9", "", 900, 800, "N", "");
    r += &line(16, "10.0.0.77", "", 900, 800, "N", "lib-name=0123");
    r += "id=17 addr=::ffff:10.0.0.5:5002 fd=8 name= age=9 idle=99 flags=N db=0 omem=0 cmd=get\n";
    // Young and untouched since they connected (a leak's first seconds), or not quite.
    r += "id=18 addr=10.0.0.9:6000 fd=8 name=0123 age=5 idle=4 flags=N db=0 omem=0 tot-cmds=1 cmd=client|setname\n";
    r += "id=19 addr=10.0.0.9:6001 fd=8 name=0123 age=5 idle=4 flags=N db=0 omem=0 tot-cmds=20 cmd=get\n";
    r += "id=20 addr=10.0.0.9:6002 fd=8 name=0123 age=1 idle=1 flags=N db=0 omem=0 cmd=NULL\n";
    r += "id=21 addr=10.0.0.9:6003 fd=8 name=0123 age=30 idle=3 flags=N db=0 omem=0 cmd=NULL\n";
    r += "id=22 addr=10.0.0.9:6004 fd=8 name=0123 age=30 idle=3 flags=N db=0 omem=0 cmd=get\n";
    r += "id=23 addr=10.0.0.9:6005 fd=8 name=0123 age=6 idle=6 flags=N db=0 omem=0 cmd=ping\n";
    let rust = |s: &Selector| -> Vec<u64> {
        r.lines()
            .filter_map(|l| ClientEntry::parse(l).ok())
            .filter(|e| s.matches(e))
            .filter_map(|e| e.id)
            .collect()
    };
    let mut selected = 0;
    for (group, key) in [
        (Dimension::ClientName, "0123"),
        (Dimension::ClientName, "a=b"),
        (Dimension::ClientName, ""),
        (Dimension::SourceIp, "10.0.0.9"),
        (Dimension::SourceIp, "::1"),
        (Dimension::SourceIp, "unix"),
        (Dimension::LibName, "0123"),
        (Dimension::LibName, "123"),
        (Dimension::AddressPrefix, "10.0.0.0/24"),
        (Dimension::AddressPrefix, "10.0.1.0/24"),
    ] {
        for only in [
            Only::Idle,
            Only::Unused,
            Only::IdlePubsub,
            Only::Blocked,
            Only::OutputBuffer,
        ] {
            let s = Selector {
                group,
                key: key.into(),
                only,
                idle_seconds: 10,
                sources: String::new(),
            };
            let want = rust(&s);
            assert_eq!(awk_selects(&s, &r), want, "{s:?}");
            selected += want.len();
        }
    }
    assert!(selected >= 20, "the cases select something: {selected}");
    let s = Selector {
        group: Dimension::ClientName,
        key: "0123".into(),
        only: Only::Idle,
        idle_seconds: 10,
        sources: String::new(),
    };
    assert_eq!(rust(&s), vec![1, 5, 10], "only the exact name, idle ≥ 10");
    let s = Selector {
        only: Only::Unused,
        ..s
    };
    assert_eq!(
        rust(&s),
        vec![1, 5, 10, 18, 21, 23],
        "idle ≥ 10, or untouched since connecting"
    );
    let s = Selector {
        group: Dimension::AddressPrefix,
        key: "10.0.0.0/24".into(),
        only: Only::Idle,
        idle_seconds: 10,
        sources: String::new(),
    };
    assert_eq!(
        rust(&s),
        vec![1, 2, 4, 5, 6, 10, 16],
        "the /24, no lookalike"
    );
}

#[test]
fn a_finding_that_rounds_to_nothing_is_not_listed() {
    // One idle connection of 1,000: a leak "confidence" of about 0.00.
    let mut r = String::new();
    r += &line(1, "10.0.0.9", "", 900, 800, "N", "");
    for i in 2..1000 {
        let ip = format!("10.0.{}.{}", i / 250, i % 250);
        r += &line(i, &ip, "api", 900, 0, "N", "");
    }
    let rep = report(&r, &info(999), cfg(10000.0), &[]);
    assert!(
        rep.findings.iter().all(|f| f.confidence >= 0.05),
        "{rep:#?}"
    );
    assert!(
        !rep.findings
            .iter()
            .any(|f| f.cause == Cause::ConnectionLeak),
        "{rep:#?}"
    );
}

#[test]
fn a_full_server_says_commands_cannot_run_and_what_works() {
    let mut r = String::new();
    for i in 0..190 {
        r += &line(
            i,
            "10.0.0.9",
            "x';touch${IFS}/tmp/P;echo'",
            900,
            800,
            "N",
            "",
        );
    }
    for i in 190..200 {
        r += &line(i, "10.0.0.1", "api", 900, 0, "N", "");
    }
    let rep = report(&r, &info(200), cfg(200.0), &[]);
    assert_eq!(rep.status, Status::Full);
    assert!(
        rep.headline.contains("New connections are refused"),
        "{}",
        rep.headline
    );
    let leak = &rep.findings[0];
    assert_eq!(leak.cause, Cause::ConnectionLeak);
    let first = &leak.remediation[0];
    assert!(first.command().is_none());
    assert!(first.is_notice(super::Notice::FullServer), "{first:?}");
    assert!(first.why.starts_with(FULL_NOTICE), "{}", first.why);
    assert!(
        first.why.contains(r"source_ip 10.0.0.9"),
        "the culprit, named: {}",
        first.why
    );
    assert!(first.why.contains("relief action"), "{}", first.why);
    for f in &rep.findings {
        if f.remediation.iter().any(|s| s.command().is_some()) {
            assert!(f.remediation[0].why.starts_with(FULL_NOTICE), "{f:#?}");
        }
    }
}

#[test]
fn kill_commands_quote_the_culprit() {
    let s = Selector {
        group: Dimension::ClientName,
        key: "x';touch${IFS}/tmp/P;echo'".into(),
        only: Only::Idle,
        idle_seconds: 60,
        sources: String::new(),
    };
    let kill = s.pipeline("redis-cli -p 1");
    assert!(
        kill.contains(r"K='x'\'';touch${IFS}/tmp/P;echo'\''' awk "),
        "{kill}"
    );
    assert_eq!(kill.matches("touch").count(), 1, "{kill}");
}

#[test]
fn smoothstep_bounds() {
    assert_eq!(smoothstep(0.5, 0.6, 0.9), 0.0);
    assert_eq!(smoothstep(0.95, 0.6, 0.9), 1.0);
    assert!((smoothstep(0.75, 0.6, 0.9) - 0.5).abs() < 1e-9);
}

/// Valkey 9 queues replies of 16 KiB or more by reference and charges `omem` only their
/// headers: two subscribers that do not read show ~80 kB each. Their sockets do not drain
/// (`events=rw` with output pending): that is the evidence there, and they are stuck readers,
/// not stale subscribers.
#[test]
fn valkey_9_stalled_readers_are_output_buffer_hogs_though_omem_is_small() {
    let mut r = String::new();
    for i in 0..20 {
        r += &line(i, "10.0.0.2", "api", 500, 0, "N", "");
    }
    for i in 20..22 {
        r += &line(
            i,
            "10.0.0.9",
            "feed",
            500,
            300,
            "P",
            "sub=1 oll=1 omem=81994 events=rw",
        );
    }
    r += &own(30, "10.0.0.5");
    let valkey = |v: &str| {
        format!(
            "redis_version:7.2.4\nserver_name:valkey\nvalkey_version:{v}\nconnected_clients:23\n"
        )
    };
    let nine = report(&r, &valkey("9.1.2"), cfg(30.0), &[]);
    let f = finding(&nine, Cause::OutputBufferHogs).expect("stalled readers on Valkey 9");
    assert_eq!(f.culprit.as_deref(), Some("source_ip 10.0.0.9"), "{f:?}");
    assert!(
        f.summary.contains("2 connection(s) do not read"),
        "{}",
        f.summary
    );
    assert!(
        finding(&nine, Cause::StalePubsub).is_none(),
        "stuck readers are not stale subscribers"
    );
    // Valkey 8.1 charges every reply: 160 kB of omem is no hog there.
    let eight = report(&r, &valkey("8.1.8"), cfg(30.0), &[]);
    assert!(finding(&eight, Cause::OutputBufferHogs).is_none());
    // A socket that drains (no `w` event) is no evidence either.
    let drains = r.replace("events=rw", "events=r");
    let rep = report(&drains, &valkey("9.1.2"), cfg(30.0), &[]);
    assert!(finding(&rep, Cause::OutputBufferHogs).is_none());
}

/// A client name longer than a label is reported cut (start, `…`, hash); the selector built
/// from that label must still mean the connections holding the long name, in Rust (relief,
/// the one-shot command's ids) and in the printed awk re-selection, and no server-side
/// `CLIENT KILL NAME` is printed for it (it would match nothing).
#[test]
fn a_cut_name_still_selects_its_connections() {
    let long = format!("svc-{}", "x".repeat(300));
    let other_long = format!("svc-{}y", "x".repeat(300));
    let mut r = String::new();
    r += &line(1, "10.0.0.9", &long, 900, 800, "N", "");
    r += &line(2, "10.0.0.9", &long, 900, 800, "N", "");
    r += &line(3, "10.0.0.9", &long[..100], 900, 800, "N", "");
    r += &line(4, "10.0.0.9", &long, 900, 1, "N", "");
    r += &line(5, "10.0.0.9", &other_long, 900, 800, "N", "");
    let summary = Aggregator::new(60).summarize(&r, 20);
    let key = summary
        .by_name
        .iter()
        .map(|(k, _)| k.clone())
        .find(|k| {
            k.len() <= crate::redis::label::MAX_LABEL_BYTES
                && crate::redis::label::bound(&long) == k.as_str()
        })
        .expect("the long name's label");
    let s = Selector {
        group: Dimension::ClientName,
        key,
        only: Only::Idle,
        idle_seconds: 10,
        sources: String::new(),
    };
    let rust: Vec<u64> = r
        .lines()
        .filter_map(|l| ClientEntry::parse(l).ok())
        .filter(|e| s.matches(e))
        .filter_map(|e| e.id)
        .collect();
    // Exactly the long name's idle connections: not its 100-byte start, not the other long
    // name (another hash).
    assert_eq!(rust, vec![1, 2]);
    // awk cannot check the hash: every idle name longer than a label with the same start.
    assert_eq!(awk_selects(&s, &r), vec![1, 2, 5]);
}
