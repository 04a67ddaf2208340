//! Sharding over exporter replicas (issue 20): replicas `0/2` and `1/2` share one targets file
//! of 100 targets (aliases of three real redis-server processes). Their target sets must be
//! disjoint and cover all 100, each the set the documented hash (FNV-1a of the label, modulo
//! N) gives it; a real Prometheus scraping both must see every target exactly once; and with
//! N = 3 only the targets whose shard changed move. And README's `/scrape` + `hashmod` layout,
//! run as written with a real Prometheus and three replicas: each target polled once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Exporter, Prometheus, Redis};
use redis_clients_exporter::config::shard::Shard;
use redis_clients_exporter::config::{self, Overrides};

const TARGETS: usize = 100;

fn label(i: usize) -> String {
    format!("fleet-{i:03}")
}

/// The targets file: 100 aliases spread over the servers.
fn write_targets(dir: &Path, servers: &[Redis]) -> std::path::PathBuf {
    let mut yaml = String::from("targets:\n");
    for i in 0..TARGETS {
        let port = servers[i % servers.len()].port;
        yaml.push_str(&format!(
            "  - address: redis://127.0.0.1:{port}\n    alias: {}\n    poll_interval_seconds: 0.5\n",
            label(i)
        ));
    }
    let p = dir.join("targets.yaml");
    std::fs::write(&p, yaml).expect("write targets file");
    p
}

/// A replica: the configuration file names the targets file and `shard` (the way a
/// StatefulSet's ConfigMap would), `--shard` overrides it when given.
fn replica(dir: &Path, targets: &Path, file_shard: &str, flag: Option<&str>) -> Exporter {
    let name = format!("{file_shard}-{}", flag.unwrap_or("none")).replace('/', "_");
    let cfg_path = dir.join(format!("exporter-{name}.toml"));
    std::fs::write(
        &cfg_path,
        format!(
            "listen = \"127.0.0.1:0\"\nshard = \"{file_shard}\"\ntargets_file = \"{}\"\ntargets_file_interval_seconds = 1\n",
            targets.display()
        ),
    )
    .expect("write config");
    let overrides = Overrides {
        shard: flag.map(str::to_string),
        ..Overrides::default()
    };
    let cfg = config::load_with_env(Some(&cfg_path), &overrides, Vec::new()).expect("config");
    Exporter::start(cfg)
}

/// The targets a replica exports, once every one it owns is up.
fn exported(e: &Exporter, expected: usize) -> BTreeSet<String> {
    let m = e.wait_for("the replica's targets up", Duration::from_secs(60), |m| {
        m.all("redis_up", &[]).len() == expected
            && m.all("redis_up", &[]).iter().all(|(_, v)| *v == 1.0)
    });
    let up = m.all("redis_up", &[]);
    let set: BTreeSet<String> = up.iter().map(|(l, _)| l["target"].clone()).collect();
    assert_eq!(set.len(), up.len(), "a target appears twice in one replica");
    set
}

fn expected(index: u32, count: u32) -> BTreeSet<String> {
    (0..TARGETS)
        .map(label)
        .filter(|l| Shard::of(l, count) == index)
        .collect()
}

/// The replica's own account: `redis_clients_exporter_shard_info` and the owned/skipped counts.
fn check_ledger(e: &Exporter, index: u32, count: u32, owned: usize) {
    let m = e.scrape();
    assert_eq!(
        m.get(
            "redis_clients_exporter_shard_info",
            &[
                ("shard", &index.to_string()),
                ("shards", &count.to_string())
            ]
        ),
        Some(1.0),
        "{}",
        m.text
    );
    let n = |state| {
        m.get(
            "redis_clients_exporter_shard_targets",
            &[("source", "targets_file"), ("state", state)],
        )
    };
    assert_eq!(n("owned"), Some(owned as f64));
    assert_eq!(n("skipped"), Some((TARGETS - owned) as f64));
}

#[test]
fn two_replicas_split_one_targets_file_and_three_move_only_what_changed_shard() {
    let servers: Vec<Redis> = (0..3).map(|_| Redis::start(&[])).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let targets = write_targets(dir.path(), &servers);

    // The hash itself: a stable, documented function, not whatever a process happens to use.
    assert_eq!(
        redis_clients_exporter::config::shard::fnv1a(b"fleet-000"),
        0x576e_8a77_a636_c3b2_u64,
        "the shard hash changed: every deployed target would move"
    );

    let two: Vec<BTreeSet<String>> = {
        let r0 = replica(dir.path(), &targets, "0/2", None);
        let r1 = replica(dir.path(), &targets, "1/2", None);
        let (e0, e1) = (expected(0, 2), expected(1, 2));
        // Both shards hold a real share (the hash spreads them), so "disjoint" is not trivial.
        assert!(
            e0.len() > 30 && e1.len() > 30,
            "{} / {}",
            e0.len(),
            e1.len()
        );
        let s0 = exported(&r0, e0.len());
        let s1 = exported(&r1, e1.len());
        assert_eq!(s0, e0, "replica 0/2 exports exactly its hash's share");
        assert_eq!(s1, e1, "replica 1/2 exports exactly its hash's share");
        assert!(s0.is_disjoint(&s1), "a target is exported by both replicas");
        let all: BTreeSet<String> = s0.union(&s1).cloned().collect();
        assert_eq!(
            all.len(),
            TARGETS,
            "the replicas together cover every target"
        );
        check_ledger(&r0, 0, 2, e0.len());
        check_ledger(&r1, 1, 2, e1.len());

        // A real Prometheus scraping both replicas sees every target exactly once.
        if common::require_tool("prometheus", "prometheus") {
            let prom = start_prometheus(&[r0.addr, r1.addr]);
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut last = String::new();
            loop {
                // Per target: how many series of redis_up Prometheus holds, from how many replicas.
                let r = prom.query("count by (target) (redis_up)");
                let per_target: BTreeMap<String, f64> = r
                    .iter()
                    .map(|v| {
                        (
                            v["metric"]["target"].as_str().unwrap_or("").to_string(),
                            v["value"][1].as_str().unwrap_or("0").parse().unwrap_or(0.0),
                        )
                    })
                    .collect();
                if per_target.len() == TARGETS {
                    assert!(
                        per_target.values().all(|n| *n == 1.0),
                        "a target is seen more than once: {per_target:?}"
                    );
                    let names: BTreeSet<String> = per_target.keys().cloned().collect();
                    assert_eq!(names, all);
                    let instances = prom.query("count(count by (instance) (redis_up))");
                    assert_eq!(
                        instances[0]["value"][1].as_str(),
                        Some("2"),
                        "both replicas scraped"
                    );
                    break;
                }
                last = format!("{per_target:?}");
                assert!(
                    Instant::now() < deadline,
                    "Prometheus never saw all {TARGETS} targets: {last}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            drop(last);
        }
        vec![s0, s1]
    };

    // N = 3: the flag overrides the file's shard. Only targets whose owner changed move.
    let r: Vec<Exporter> = (0..3)
        .map(|i| replica(dir.path(), &targets, "0/2", Some(&format!("{i}/3"))))
        .collect();
    let three: Vec<BTreeSet<String>> = r
        .iter()
        .enumerate()
        .map(|(i, e)| exported(e, expected(i as u32, 3).len()))
        .collect();
    let mut moved = 0;
    let mut stayed = 0;
    for t in (0..TARGETS).map(label) {
        let before = two
            .iter()
            .position(|s| s.contains(&t))
            .expect("owned at N=2");
        let owners: Vec<usize> = (0..3).filter(|&i| three[i].contains(&t)).collect();
        assert_eq!(owners.len(), 1, "{t} owned by {owners:?} at N=3");
        let after = owners[0];
        // What the hash says, checked against what the replicas do.
        assert_eq!(before as u32, Shard::of(&t, 2), "{t}");
        assert_eq!(after as u32, Shard::of(&t, 3), "{t}");
        if before == after {
            stayed += 1;
        } else {
            moved += 1;
        }
    }
    // Modulo hashing: a target keeps its replica when h mod 2 == h mod 3 (about a third).
    assert!(moved > 0 && stayed > 0, "moved {moved}, stayed {stayed}");
    for (i, e) in r.iter().enumerate() {
        check_ledger(e, i as u32, 3, three[i].len());
    }
}

#[test]
fn a_bad_shard_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.toml");
    for (value, words) in [
        ("2/2", "below N"),
        ("0/0", "between 1"),
        ("one/2", "index"),
        ("ordinal/2", "ordinal"),
    ] {
        std::fs::write(&cfg, format!("shard = \"{value}\"\n")).expect("write");
        // No HOSTNAME in the environment given and (in the test) a kernel host name without
        // `-<n>` would also fail; give one that cannot parse to make it certain.
        let env = vec![("HOSTNAME".to_string(), "exporter".to_string())];
        let e = config::load_with_env(Some(&cfg), &Overrides::default(), env)
            .expect_err(value)
            .to_string();
        assert!(e.contains("key `shard`"), "{value}: {e}");
        assert!(e.contains(&cfg.display().to_string()), "{value}: {e}");
        assert!(e.contains(words), "{value}: {e}");
    }
    // The flag is named as the flag.
    let e = config::load_with_env(
        None,
        &Overrides {
            shard: Some("3/3".into()),
            ..Overrides::default()
        },
        Vec::new(),
    )
    .expect_err("3/3")
    .to_string();
    assert!(e.contains("--shard"), "{e}");
    // The binary exits 2 on it.
    let out = Command::new(env!("CARGO_BIN_EXE_redis-clients-exporter"))
        .args(["--shard", "5/2", "--check-config"])
        .output()
        .expect("run exporter");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shard"));
    // The ordinal of a StatefulSet pod.
    let env = vec![(
        "HOSTNAME".to_string(),
        "redis-clients-exporter-1".to_string(),
    )];
    std::fs::write(&cfg, "shard = \"ordinal/3\"\n").expect("write");
    let c = config::load_with_env(Some(&cfg), &Overrides::default(), env).expect("ordinal");
    assert_eq!(c.shard, Shard { index: 1, count: 3 });
}

/// The Prometheus scraping both replicas.
fn start_prometheus(replicas: &[std::net::SocketAddr]) -> Prometheus {
    let list: Vec<String> = replicas.iter().map(|a| format!("'{a}'")).collect();
    Prometheus::start(|_| {
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: redis-clients-exporter\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        )
    })
}

trait Query {
    fn query(&self, q: &str) -> Vec<serde_json::Value>;
}

impl Query for Prometheus {
    fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let (_, body) = common::http_get(
            format!("127.0.0.1:{}", self.port).parse().expect("addr"),
            &format!("/api/v1/query?query={}", common::url_encode(q)),
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

/// README's "Layout 2" as written: a real Prometheus with README's scrape configuration (only
/// the replicas' addresses and the target list replaced) sends each of 20 `/scrape` targets to
/// one of three exporter replicas by `hashmod`. Prometheus holds each target's series exactly
/// once, and on the Redis side each target is polled by exactly one exporter connection: no
/// replica polls what another one was sent.
#[test]
fn prometheus_hashmod_sends_each_scrape_target_to_exactly_one_replica() {
    if !common::require_tool("prometheus", "prometheus") {
        return;
    }
    // Two servers, each listening on ten loopback addresses: 20 distinct `host:port` targets.
    let binds: Vec<String> = (1..=10).map(|i| format!("127.0.0.{i}")).collect();
    let mut args = vec!["--bind"];
    args.extend(binds.iter().map(String::as_str));
    let servers: Vec<Redis> = (0..2).map(|_| Redis::start(&args)).collect();
    let targets: Vec<String> = servers
        .iter()
        .flat_map(|r| binds.iter().map(move |b| format!("{b}:{}", r.port)))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let allow: Vec<String> = servers
        .iter()
        .map(|r| format!("\"127.0.0.0/24:{}\"", r.port))
        .collect();
    let replicas: Vec<Exporter> = (0..3)
        .map(|i| {
            let p = dir.path().join(format!("replica-{i}.toml"));
            std::fs::write(
                &p,
                format!(
                    "listen = \"127.0.0.1:0\"\nscrape_allow = [{a}]\n\n[auth_profiles.ops]\ntargets = [{a}]\n",
                    a = allow.join(", ")
                ),
            )
            .expect("write config");
            let cfg = config::load_with_env(Some(&p), &Overrides::default(), Vec::new())
                .expect("config");
            Exporter::start(cfg)
        })
        .collect();

    // README's scrape configuration, with this test's replicas and targets.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let layout = readme
        .split("### Layout 2")
        .nth(1)
        .and_then(|s| s.split("```yaml\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README's Layout 2 scrape configuration");
    let sd = dir.path().join("redis-targets.yaml");
    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    std::fs::write(&sd, format!("- targets: [{}]\n", list.join(", "))).expect("write sd");
    let mut scrape = String::new();
    let mut replaced = 0;
    for line in layout.lines() {
        let line = if line.contains("file_sd_configs:") {
            format!("    file_sd_configs: [{{files: ['{}']}}]", sd.display())
        } else if let Some(at) = line.find("replacement: redis-clients-exporter-") {
            let i = line[at..]
                .chars()
                .find(char::is_ascii_digit)
                .and_then(|c| c.to_digit(10))
                .expect("replica index") as usize;
            replaced += 1;
            format!("{}replacement: '{}'}}", &line[..at], replicas[i].addr)
        } else {
            line.to_string()
        };
        scrape.push_str(&line);
        scrape.push('\n');
    }
    assert_eq!(
        replaced, 3,
        "README's layout names three replicas:\n{layout}"
    );
    let prom = Prometheus::start(|_| {
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{}",
            scrape
        )
    });

    // Prometheus: every target once, up.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = prom.query("count by (instance) (redis_up == 1)");
        let per: BTreeMap<String, String> = r
            .iter()
            .map(|v| {
                (
                    v["metric"]["instance"].as_str().unwrap_or("").to_string(),
                    v["value"][1].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want: BTreeSet<String> = targets.iter().cloned().collect();
        if per.keys().cloned().collect::<BTreeSet<_>>() == want {
            assert!(
                per.values().all(|n| n == "1"),
                "a target is held more than once: {per:?}"
            );
            break;
        }
        if Instant::now() >= deadline {
            let (_, t) = common::http_get(
                format!("127.0.0.1:{}", prom.port).parse().expect("addr"),
                "/api/v1/targets",
            );
            panic!("Prometheus never saw all 20 targets up once: {per:?}\n{scrape}\n{t}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // Redis: each target (a listening address) has exactly one exporter connection.
    for r in &servers {
        let mut admin = r.conn();
        let list = match admin.cmd(&["CLIENT", "LIST"]) {
            common::Reply::Bulk(Some(b)) => b,
            other => panic!("CLIENT LIST: {other:?}"),
        };
        for b in &binds {
            let laddr = format!(" laddr={b}:{} ", r.port);
            let ours = list
                .lines()
                .filter(|l| l.contains(&laddr) && l.contains(" name=redis-clients-exporter "))
                .count();
            assert_eq!(
                ours, 1,
                "{b}:{} polled by {ours} connections\n{list}",
                r.port
            );
        }
    }
    // Prometheus sent the targets to more than one replica (which one is its MD5 `hashmod`).
    let (_, t) = common::http_get(
        format!("127.0.0.1:{}", prom.port).parse().expect("addr"),
        "/api/v1/targets",
    );
    let t: serde_json::Value = serde_json::from_str(&t).expect("targets json");
    let used: BTreeSet<String> = t["data"]["activeTargets"]
        .as_array()
        .expect("active targets")
        .iter()
        .filter_map(|a| a["scrapeUrl"].as_str())
        .filter_map(|u| u.split('/').nth(2).map(str::to_string))
        .collect();
    let used = used.len();
    assert!(used >= 2, "hashmod sent all 20 targets to {used} replica");
}
