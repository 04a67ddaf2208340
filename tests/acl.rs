//! The shipped ACL users (deploy/acl/) are exactly what the exporter needs: a real redis-server
//! loads the file with `--aclfile`, the exporter binary polls it as that user (a database
//! number, chunked CLIENT LIST, keepalive PINGs, a graceful stop with QUIT), and the server's
//! own `ACL LOG` records no denied command (no `NOPERM`) while `INFO commandstats` shows every
//! rule of the user in use. The relief user can close a connection and change the
//! configuration; the plain user cannot. A cluster (CLUSTER SHARDS) and a Sentinel (its own
//! user, deploy/acl/sentinel.acl) are polled the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, Metrics, Redis, Reply, RespConn, Sentinel};

const BIN: &str = env!("CARGO_BIN_EXE_redis-clients-exporter");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The placeholder passwords of the shipped files, used as they are.
const PW: &str = "CHANGE-ME";
const RELIEF_PW: &str = "CHANGE-ME-RELIEF";
const WAIT: Duration = Duration::from_secs(30);

/// The data-node ACL file for the server under test: Redis 7.0 refuses to load the 7.2+
/// subcommands, so it and 6.2 have their own.
fn users_file() -> PathBuf {
    let name = if common::server_version() >= (7, 2) {
        "users.acl"
    } else {
        "users-redis-6.2-7.0.acl"
    };
    Path::new(ROOT).join("deploy/acl").join(name)
}

/// `user NAME rules...` lines of a shipped file: (name, rules).
fn users(file: &Path) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            assert_eq!(words.next(), Some("user"), "{}: {l}", file.display());
            let name = words.next().expect("user name").to_string();
            (name, words.map(str::to_string).collect())
        })
        .collect()
}

fn rules_of(file: &Path, user: &str) -> Vec<String> {
    users(file)
        .into_iter()
        .find(|(n, _)| n == user)
        .unwrap_or_else(|| panic!("no user {user} in {}", file.display()))
        .1
}

/// The commands a user is allowed (`+info` -> `info`, `+client|list` -> `client|list`), as
/// INFO commandstats names them.
fn allowed_commands(rules: &[String]) -> BTreeSet<String> {
    rules
        .iter()
        .filter_map(|r| r.strip_prefix('+'))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Starts redis-server with the shipped ACL file plus an open `default` user for the test's
/// own (admin) connections.
fn redis_with_acl(file: &Path, extra: &[&str]) -> (Redis, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let acl = dir.path().join("users.acl");
    let shipped = std::fs::read_to_string(file).expect("read acl");
    std::fs::write(
        &acl,
        format!("user default on nopass ~* &* +@all\n{shipped}"),
    )
    .expect("write");
    let acl = acl.to_str().expect("utf-8 path").to_string();
    let args: Vec<&str> = [&["--aclfile", acl.as_str()][..], extra].concat();
    (Redis::start(&args), dir)
}

/// Creates the users of a shipped file at run time, as the README's `ACL SETUSER` lines do.
fn setuser(c: &mut RespConn, file: &Path) {
    for (name, rules) in users(file) {
        let mut args = vec!["ACL", "SETUSER", name.as_str()];
        args.extend(rules.iter().map(String::as_str));
        let r = c.cmd(&args);
        assert!(!r.is_error(), "ACL SETUSER {name}: {r:?}");
    }
}

/// Every entry of the server's ACL LOG, as text (empty: nothing was denied).
fn acl_log(c: &mut RespConn) -> Vec<String> {
    match c.cmd(&["ACL", "LOG"]) {
        Reply::Array(entries) => entries.iter().map(|e| format!("{e:?}")).collect(),
        other => panic!("ACL LOG: {other:?}"),
    }
}

/// `cmdstat_NAME:calls=N,...` of INFO commandstats: NAME -> calls.
fn command_calls(c: &mut RespConn) -> Vec<(String, u64)> {
    let info = c.cmd(&["INFO", "commandstats"]);
    let text = info.as_bulk().expect("INFO commandstats").to_string();
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

fn errorstats(c: &mut RespConn) -> String {
    c.cmd(&["INFO", "errorstats"])
        .as_bulk()
        .unwrap_or_default()
        .to_string()
}

fn assert_nothing_denied(c: &mut RespConn, what: &str) {
    let log = acl_log(c);
    assert!(
        log.is_empty(),
        "{what}: the server denied commands:\n{}",
        log.join("\n")
    );
    let errors = errorstats(c);
    assert!(
        !errors.contains("NOPERM"),
        "{what}: NOPERM errors: {errors}"
    );
}

/// The exporter binary, its log lines collected as they come.
struct Daemon {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(config_toml: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_toml).expect("write config");
        let mut child = Command::new(BIN)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--config",
            ])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn exporter");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().expect("logs").push(line);
                }
            });
        }
        let mut d = Daemon {
            child,
            logs,
            addr: "127.0.0.1:0".parse().expect("addr"),
            _dir: dir,
        };
        let deadline = Instant::now() + WAIT;
        let line = loop {
            if let Some(l) = d.log().into_iter().find(|l| l.contains("listening")) {
                break l;
            }
            assert!(
                Instant::now() < deadline,
                "no listening line:\n{}",
                d.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        d.addr = line
            .split("\"addr\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("addr")
            .parse()
            .expect("addr");
        d
    }

    fn log(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    fn scrape(&self) -> Metrics {
        let (status, body) = common::http_get(self.addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.scrape();
            if cond(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last scrape:\n{}\nlog:\n{}",
                m.text,
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait: the exporter closes its connections with QUIT.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "exporter did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn polls(m: &Metrics) -> f64 {
    m.sum("redis_clients_exporter_polls_total", &[])
}

#[test]
fn the_exporter_user_of_the_shipped_acl_file_polls_with_no_denied_command() {
    let file = users_file();
    let (redis, _acl_dir) = redis_with_acl(&file, &[]);
    let mut admin = redis.conn();
    // 600 clients: more than one chunk of CLIENT LIST ID (500), so the chunked walk and its
    // CLIENT ID run; the stats start from here, without the test's own set-up commands.
    let crowd: Vec<RespConn> = (0..600).map(|_| redis.conn()).collect();
    assert!(!admin.cmd(&["CONFIG", "RESETSTAT"]).is_error());
    assert!(!admin.cmd(&["ACL", "LOG", "RESET"]).is_error());

    let d = Daemon::start(&format!(
        "[[targets]]\naddress = \"redis://127.0.0.1:{}/1\"\nalias = \"acl\"\n\
         username = \"exporter\"\npassword = \"{PW}\"\npoll_interval_seconds = 1\n",
        redis.port
    ));
    let m = d.wait_for(
        "a few polls of 600+ clients, redis_up 1, CONFIG readable",
        |m| {
            m.get("redis_up", &[("target", "acl")]) == Some(1.0)
                && m.get("redis_connected_clients", &[("target", "acl")])
                    .is_some_and(|v| v >= 600.0)
                && polls(m) >= 4.0
        },
    );
    assert_eq!(
        m.get("redis_client_config_available", &[("target", "acl")]),
        Some(1.0),
        "CONFIG GET refused:\n{}",
        m.text
    );
    // The server's idle timeout makes the exporter PING between polls; the crowd goes.
    drop(crowd);
    assert!(!admin.cmd(&["CONFIG", "SET", "timeout", "1"]).is_error());
    let pings = |c: &mut RespConn| {
        command_calls(c)
            .into_iter()
            .find(|(n, _)| n == "ping")
            .map_or(0, |(_, calls)| calls)
    };
    let deadline = Instant::now() + WAIT;
    while pings(&mut admin) < 3 {
        assert!(
            Instant::now() < deadline,
            "no keepalive PINGs:\n{}",
            d.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_nothing_denied(&mut admin, "while polling");
    // The exporter's connection runs as the ACL user, in database 1.
    let list = admin.cmd(&["CLIENT", "LIST"]);
    let ours = list
        .as_bulk()
        .expect("CLIENT LIST")
        .lines()
        .find(|l| l.contains("name=redis-clients-exporter"))
        .map(str::to_string)
        .expect("the exporter's connection");
    assert!(
        ours.contains(" user=exporter") && ours.contains(" db=1 "),
        "{ours}"
    );

    d.stop();
    assert_nothing_denied(&mut admin, "after the exporter stopped (QUIT)");

    // Every rule of the user was used: none is there for nothing (the cluster rules are
    // exercised by the cluster test below). Before 7.0, INFO commandstats does not name
    // subcommands (and CLIENT NO-EVICT, 7.0+, is not sent): nothing to compare there.
    if common::server_version() < (7, 0) {
        return;
    }
    let used: BTreeSet<String> = command_calls(&mut admin)
        .into_iter()
        .filter(|(_, calls)| *calls > 0)
        .map(|(n, _)| n)
        .collect();
    let unused: Vec<String> = allowed_commands(&rules_of(&file, "exporter"))
        .into_iter()
        .filter(|c| !used.contains(c) && !c.starts_with("cluster|"))
        .collect();
    assert!(
        unused.is_empty(),
        "rules of {} the exporter never used: {unused:?} (used: {used:?})",
        file.display()
    );
}

#[test]
fn the_relief_user_may_act_and_the_exporter_user_may_not() {
    let file = users_file();
    let (redis, _acl_dir) = redis_with_acl(&file, &[]);
    let mut admin = redis.conn();
    // Shipped `off`: turned on where relief is enabled, as deploy/acl/README.md says.
    assert!(!admin
        .cmd(&["ACL", "SETUSER", "exporter-relief", "on"])
        .is_error());
    assert!(!admin.cmd(&["ACL", "LOG", "RESET"]).is_error());

    let login = |user: &str, pw: &str| {
        let mut c = redis.conn();
        let r = c.cmd(&["AUTH", user, pw]);
        assert_eq!(r.as_simple(), Some("OK"), "AUTH {user}: {r:?}");
        c
    };
    let mut victim = redis.conn().named("leaky-pool");
    let victim_id = victim.cmd(&["CLIENT", "ID"]);
    let victim_id = match victim_id {
        Reply::Int(id) => id.to_string(),
        other => panic!("CLIENT ID: {other:?}"),
    };
    let victim_addr = admin
        .cmd(&["CLIENT", "LIST", "ID", &victim_id])
        .as_bulk()
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix("addr="))
                .map(str::to_string)
        })
        .expect("victim's addr");

    // The plain user: reading is fine, acting is refused.
    let mut plain = login("exporter", PW);
    for cmd in [
        &[
            "CLIENT",
            "KILL",
            "ID",
            victim_id.as_str(),
            "ADDR",
            victim_addr.as_str(),
            "SKIPME",
            "yes",
        ][..],
        &["CONFIG", "SET", "timeout", "300"][..],
        &["CONFIG", "SET", "maxclients", "20000"][..],
        &["GET", "some-key"][..],
        &["KEYS", "*"][..],
    ] {
        let r = plain.cmd(cmd);
        assert!(
            matches!(&r, Reply::Error(e) if e.starts_with("NOPERM")),
            "exporter may run {cmd:?}: {r:?}"
        );
    }
    assert!(!acl_log(&mut admin).is_empty(), "the refusals are logged");
    assert!(!admin.cmd(&["ACL", "LOG", "RESET"]).is_error());
    assert!(!admin.cmd(&["CONFIG", "RESETSTAT"]).is_error());

    // The relief user: what relief sends (src/relief/), in its order.
    let mut relief = login("exporter-relief", RELIEF_PW);
    for cmd in [
        &["INFO", "clients"][..],
        &["CONFIG", "GET", "timeout"][..],
        &["CONFIG", "SET", "timeout", "300"][..],
        &["CONFIG", "SET", "tcp-keepalive", "60"][..],
        &["CLIENT", "ID"][..],
        &["CLIENT", "LIST", "ID", victim_id.as_str()][..],
        &[
            "CLIENT",
            "KILL",
            "ID",
            victim_id.as_str(),
            "ADDR",
            victim_addr.as_str(),
            "SKIPME",
            "yes",
        ][..],
        &["CONFIG", "SET", "maxclients", "5000"][..],
    ] {
        let r = relief.cmd(cmd);
        assert!(!r.is_error(), "exporter-relief may not run {cmd:?}: {r:?}");
        if cmd[1] == "KILL" {
            assert!(
                matches!(r, Reply::Int(1)),
                "CLIENT KILL closed nothing: {r:?}"
            );
        }
    }
    assert!(victim.read().is_err(), "the victim's connection is closed");
    assert_nothing_denied(&mut admin, "relief's commands");
    let r = relief.cmd(&["GET", "some-key"]);
    assert!(
        matches!(&r, Reply::Error(e) if e.starts_with("NOPERM")),
        "{r:?}"
    );
}

#[test]
fn the_readme_acl_setuser_lines_are_the_shipped_files() {
    // Run the README's lines themselves (PASSWORD replaced) against a real server: they must
    // be accepted and give the users exactly the file's rules.
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README");
    let lines: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("ACL SETUSER exporter"))
        .collect();
    assert!(
        lines.len() >= 2,
        "README has no ACL SETUSER lines for exporter and exporter-relief"
    );
    let file = Path::new(ROOT).join("deploy/acl/users.acl");
    if common::server_version() < (7, 2) {
        // The README's lines are those of users.acl (7.2+), which this server cannot load; the
        // older file is checked against it by deploy/check.sh.
        eprintln!(
            "SKIP: README lines are for Redis 7.2+; server is {:?}",
            common::server_version()
        );
        return;
    }
    let redis = Redis::start(&[]);
    let mut admin = redis.conn();
    for line in &lines {
        let args: Vec<String> = line
            .split_whitespace()
            .map(|w| match w {
                ">PASSWORD" => format!(">{PW}"),
                w => w.to_string(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = admin.cmd(&args);
        assert!(!r.is_error(), "{line}: {r:?}");
    }
    let readme_rules: BTreeSet<(String, String)> = lines
        .iter()
        .map(|l| {
            let mut w = l.split_whitespace().skip(2);
            let name = w.next().unwrap().to_string();
            (
                name,
                w.filter(|r| !r.starts_with('>'))
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .collect();
    let file_rules: BTreeSet<(String, String)> = users(&file)
        .into_iter()
        .filter(|(n, _)| lines.iter().any(|l| l.split_whitespace().nth(2) == Some(n)))
        .map(|(n, r)| {
            (
                n,
                r.into_iter()
                    .filter(|r| !r.starts_with('>'))
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .collect();
    assert_eq!(
        readme_rules,
        file_rules,
        "README's ACL SETUSER lines differ from {}",
        file.display()
    );
}

#[test]
fn cluster_discovery_with_the_shipped_user_is_never_denied() {
    let file = users_file();
    let cluster = Cluster::start(3, 0);
    for node in &cluster.nodes {
        let mut c = node.conn();
        setuser(&mut c, &file);
        assert!(!c.cmd(&["ACL", "LOG", "RESET"]).is_error());
    }
    let seed = cluster.nodes[0].port;
    let d = Daemon::start(&format!(
        "[[targets]]\naddress = \"redis://127.0.0.1:{seed}\"\ncluster = true\nalias = \"orders\"\n\
         username = \"exporter\"\npassword = \"{PW}\"\npoll_interval_seconds = 1\n"
    ));
    d.wait_for("every node discovered and up", |m| {
        m.sum("redis_up", &[("cluster", "orders")]) == 3.0 && polls(m) >= 9.0
    });
    d.stop();
    for node in &cluster.nodes {
        let mut c = node.conn();
        assert_nothing_denied(&mut c, &format!("cluster node {}", node.port));
    }
    let mut seed_conn = cluster.nodes[0].conn();
    let discovery = command_calls(&mut seed_conn)
        .into_iter()
        .filter(|(n, calls)| (n == "cluster" || n.starts_with("cluster|")) && *calls > 0)
        .count();
    assert!(discovery > 0, "no CLUSTER SHARDS/NODES on the seed");
}

#[test]
fn sentinel_discovery_with_the_shipped_users_is_never_denied() {
    let file = users_file();
    let (primary, _acl_dir) = redis_with_acl(&file, &[]);
    let sentinel = Sentinel::start("mymaster", primary.port);
    let sentinel_file = Path::new(ROOT).join("deploy/acl/sentinel.acl");
    let mut s = sentinel.conn();
    setuser(&mut s, &sentinel_file);
    // The sentinel logs what it denies (so an empty log below means something), and the user
    // may only read.
    let mut as_exporter = sentinel.conn();
    assert_eq!(
        as_exporter.cmd(&["AUTH", "exporter", PW]).as_simple(),
        Some("OK")
    );
    let r = as_exporter.cmd(&["SENTINEL", "RESET", "*"]);
    assert!(
        matches!(&r, Reply::Error(e) if e.starts_with("NOPERM")),
        "{r:?}"
    );
    assert!(
        !acl_log(&mut s).is_empty(),
        "the sentinel does not log denials"
    );
    assert!(!s.cmd(&["ACL", "LOG", "RESET"]).is_error());
    let mut admin = primary.conn();
    assert!(!admin.cmd(&["ACL", "LOG", "RESET"]).is_error());

    let d = Daemon::start(&format!(
        "[auth_profiles.data]\nusername = \"exporter\"\npassword = \"{PW}\"\n\
         [auth_profiles.sentinels]\nusername = \"exporter\"\npassword = \"{PW}\"\n\
         [[targets]]\nsentinel_master = \"mymaster\"\nsentinels = [\"redis://127.0.0.1:{}\"]\n\
         sentinel_auth = \"sentinels\"\nauth = \"data\"\npoll_interval_seconds = 1\n",
        sentinel.port
    ));
    d.wait_for("the primary discovered through the sentinel and up", |m| {
        m.sum("redis_up", &[("role", "primary")]) == 1.0 && polls(m) >= 3.0
    });
    d.stop();
    assert_nothing_denied(&mut admin, "the primary");
    let log = acl_log(&mut s);
    assert!(
        log.is_empty(),
        "the sentinel denied commands:\n{}",
        log.join("\n")
    );
}
