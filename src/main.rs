//! The binary's edge: flags, logging, signals. Everything else lives in the library.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use redis_clients_exporter::config::{self, LogFormat, Overrides};

/// Prometheus exporter that tells who holds the connections of your Redis servers.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML or YAML, by extension).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to serve /metrics on [default: 0.0.0.0:9816].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Redis to poll (redis://, rediss://, valkey://, valkeys://, unix://); repeat for several.
    /// Replaces the file's targets.
    #[arg(long = "target", value_name = "URL")]
    targets: Vec<String>,
    /// File holding the password for targets that set none of their own.
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,
    /// Values kept per label dimension before folding the rest into `other` [default: 50].
    #[arg(long)]
    top_k: Option<usize>,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Poll and export only this replica's share of the targets: `i/N` (0-based) or
    /// `ordinal/N` (i from the host name's `-<ordinal>` suffix, as in a StatefulSet).
    #[arg(long, value_name = "i/N")]
    shard: Option<String>,
    /// Protect /metrics with TLS, client certificates and/or basic auth (exporter-toolkit's
    /// web config file format; re-read when it or a certificate changes).
    #[arg(long, value_name = "PATH")]
    web_config_file: Option<PathBuf>,
    /// Validate the configuration, print a summary without secrets, and exit. Password files
    /// and password variables must be readable, as at start.
    #[arg(long)]
    check_config: bool,
    /// With --check-config: do not read the password files and variables (to check a
    /// configuration away from the host that holds them).
    #[arg(long, requires = "check_config")]
    skip_secrets: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One-shot triage of one Redis: why are connections running out, who holds them, and the
    /// commands that restore service. Exit status 0 with a report, 1 when Redis cannot be
    /// observed (full, unreachable, wrong password), 2 on bad arguments.
    Diagnose(DiagnoseArgs),
    /// Ask a running exporter to close connections and/or CONFIG SET on one target through the
    /// connection it already holds: works while Redis is full. Previews by default (the exact
    /// connections, nothing changed); --execute previews, then acts with the preview's token.
    /// Needs `[relief] enabled` on the exporter and a relief user. Exit status 0 done, 1
    /// refused or failed, 2 bad arguments.
    Relieve(Box<RelieveArgs>),
    /// Close the connections a diagnosis names, on a new connection: lists the clients, selects
    /// exactly the group's (idle, pub/sub, blocked rules as the diagnosis), closes each by id.
    /// Takes redis-cli's connection flags; the password from REDISCLI_AUTH or --password-file.
    /// Safe to rerun. Exit status 0 done (even with nothing left to close), 1 when Redis
    /// refused (full: no new connection; auth; unreachable), 2 on bad arguments.
    #[command(disable_help_flag = true)]
    Close(Box<CloseArgs>),
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("group").required(true).args(["source_ip", "client_name", "lib_name", "address_prefix"])))]
struct CloseArgs {
    /// Server host (as redis-cli's -h).
    #[arg(short = 'h', long = "host", default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short = 'p', long = "port", default_value_t = 6379)]
    port: u16,
    /// Server socket (overrides host and port).
    #[arg(short = 's', long = "socket", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Connect with TLS.
    #[arg(long)]
    tls: bool,
    /// ACL user.
    #[arg(long)]
    user: Option<String>,
    /// Database number.
    #[arg(short = 'n', default_value_t = 0)]
    db: u32,
    /// File holding the password (else REDISCLI_AUTH, as redis-cli).
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,
    /// The connections from this source address ("unix" for a socket).
    #[arg(long)]
    source_ip: Option<String>,
    /// The connections with this client name ('' for those without one).
    #[arg(long)]
    client_name: Option<String>,
    /// The connections of this client library (lib-name).
    #[arg(long)]
    lib_name: Option<String>,
    /// The connections from this IPv4 /24 (a.b.c.0/24).
    #[arg(long)]
    address_prefix: Option<String>,
    /// Which of the group's connections.
    #[arg(long, value_enum, default_value_t = CloseOnly::Idle)]
    only: CloseOnly,
    /// With idle and idle-pubsub: idle at least this long.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    idle_seconds: u64,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CloseOnly {
    /// Idle, not pub/sub, not blocked.
    Idle,
    /// A leak's own connections: idle, or untouched since they connected (not pub/sub, not
    /// blocked).
    Unused,
    IdlePubsub,
    Blocked,
    OutputBuffer,
}

#[derive(clap::Args, Debug)]
struct RelieveArgs {
    /// The exporter's URL (http:// or https://).
    #[arg(
        long,
        env = "RELIEVE_EXPORTER",
        default_value = "http://127.0.0.1:9816"
    )]
    exporter: String,
    /// The target's label in the exporter (its alias, or host:port).
    #[arg(long, value_name = "LABEL")]
    target: String,
    /// Connections from this IP (every port), IP:port ([IPv6]:port: one connection), or `unix`.
    #[arg(long, value_name = "ADDR")]
    addr: Option<String>,
    /// Connections with exactly this client name.
    #[arg(long)]
    name: Option<String>,
    /// Connections of this client library (lib-name, Redis 7.2+).
    #[arg(long)]
    lib: Option<String>,
    /// Connections of this ACL user.
    #[arg(long, value_name = "ACL_USER")]
    user: Option<String>,
    /// Connections idle at least this long.
    #[arg(long, value_name = "SECONDS")]
    min_idle: Option<u64>,
    /// The connections the exporter's diagnosis blames: its top finding, or the named cause
    /// (connection_leak, stale_pubsub, blocked_clients, output_buffer_hogs).
    #[arg(long, value_name = "CAUSE", num_args = 0..=1, default_missing_value = "top")]
    finding: Option<String>,
    /// Close pub/sub connections too (never otherwise).
    #[arg(long)]
    include_pubsub: bool,
    /// Close blocked connections too (never otherwise).
    #[arg(long)]
    include_blocked: bool,
    /// CONFIG SET in the same action: timeout=N, tcp_keepalive=N, maxclients=N (repeatable;
    /// within the exporter's relief.config_set_bounds).
    #[arg(long = "set", value_name = "PARAM=VALUE")]
    set: Vec<String>,
    /// Act: preview, then execute with the preview's token, and print what was closed and set.
    /// With --token, execute that reviewed preview instead of a new one.
    #[arg(long)]
    execute: bool,
    /// The token of a preview you reviewed (printed with it): with --execute, exactly that
    /// preview is executed (the exporter re-checks each connection), no new one is made.
    #[arg(long, value_name = "TOKEN", requires = "execute")]
    token: Option<String>,
    /// Basic-auth user (a relief user of the exporter).
    #[arg(long, env = "RELIEVE_USER", value_name = "USER")]
    auth_user: Option<String>,
    /// File holding that user's password.
    #[arg(long, env = "RELIEVE_PASSWORD_FILE", value_name = "PATH")]
    password_file: Option<PathBuf>,
    /// CA bundle to verify an https exporter with (default: the system's roots).
    #[arg(long, env = "RELIEVE_CA_FILE", value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Print the exporter's JSON answers instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct DiagnoseArgs {
    /// The Redis to diagnose (redis://, rediss://, unix://). A password in it is used, never shown.
    #[arg(value_name = "URL")]
    url: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Seconds between the two snapshots (rates, growth); 0 takes one snapshot.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    sample_seconds: f64,
    /// How long to keep retrying while Redis is full before giving up.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    timeout_seconds: f64,
    /// A connection idle this long counts as idle (leaks, stale subscribers).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    idle_threshold_seconds: u64,
    /// File holding the password, when the URL has none.
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Markdown,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Diagnose(args)) => return diagnose(args),
        Some(Command::Relieve(args)) => return relieve(args),
        Some(Command::Close(args)) => return close(args),
        None => {}
    }
    let overrides = Overrides {
        listen: cli.listen.clone(),
        targets: cli.targets.clone(),
        password_file: cli.password_file.clone(),
        top_k: cli.top_k,
        log_format: cli.log_format,
        web_config_file: cli.web_config_file.clone(),
        shard: cli.shard.clone(),
    };
    let loaded = if cli.skip_secrets {
        config::load_with_env(cli.config.as_deref(), &overrides, config::process_env())
    } else {
        config::load(cli.config.as_deref(), &overrides)
    };
    let cfg = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if cli.check_config {
        use std::fmt::Write as _;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "configuration OK: listen {}, top_k {}, {} target(s)",
            cfg.listen,
            cfg.top_k,
            cfg.targets.len()
        );
        if !cfg.shard.is_whole() {
            let _ = writeln!(
                o,
                "  shard {}: this replica polls only the targets whose label hashes to it",
                cfg.shard
            );
        }
        for t in &cfg.targets {
            let _ = writeln!(o, "  {} (poll every {:?})", t.label, t.poll_interval);
        }
        for g in &cfg.topology.groups {
            let _ = writeln!(
                o,
                "  {} (expands to its nodes, poll every {:?})",
                g.name, g.node.poll_interval
            );
        }
        if let Some(f) = &cfg.topology.targets_file {
            let _ = writeln!(
                o,
                "  targets file {} (read every {:?})",
                f.path.display(),
                f.interval
            );
        }
        let id = &cfg.identity;
        if let Some(f) = &id.static_map_file {
            let _ = writeln!(
                o,
                "  identity: static map {} ({} entries)",
                f.display(),
                id.static_map.len()
            );
        }
        if let Some(k) = &id.kubernetes {
            // The URL as configured carries no credentials (refused at load).
            let _ = writeln!(
                o,
                "  identity: kube-state-metrics via {} (every {:?})",
                k.prometheus_url, k.interval
            );
        }
        if let Some(d) = &id.dns {
            let _ = writeln!(
                o,
                "  identity: reverse DNS via {} (at most {} lookups a minute)",
                d.resolver, d.max_lookups_per_minute
            );
        }
        write_stdout(&o);
        return std::process::ExitCode::SUCCESS;
    }
    init_logging(cfg.log_format);
    match run(cfg, cli.config.clone(), overrides) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: journald, files and log shippers would keep the escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        // JSON escapes control characters in every string (no forged line); a reader that
        // shows bidi overrides shows them inside a quoted value.
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.fmt_fields(escaped_fields()).init(),
    }
}

/// Text log fields as tracing-subscriber writes them (`message`, then `name=value`), every
/// value through the one cleaning rule (src/redis/untrusted.rs): whatever a server, a discovery
/// reply or a caller put in a value cannot start a forged line, move the cursor or reorder it.
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = redis_clients_exporter::redis::untrusted::escape(&text, usize::MAX);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ")
}

#[tokio::main]
async fn run(
    cfg: config::Config,
    file: Option<PathBuf>,
    overrides: Overrides,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let running = redis_clients_exporter::start(cfg).await?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => match config::load(file.as_deref(), &overrides) {
                Ok(new) => {
                    let s = running.reload(new).await;
                    tracing::info!(added = ?s.added, removed = ?s.removed, restarted = ?s.restarted, kept = s.kept, "configuration reloaded");
                }
                Err(e) => tracing::error!(error = %e, "configuration reload rejected; the running configuration stays in force"),
            },
        }
    }
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

fn seconds(what: &str, v: f64) -> Result<std::time::Duration, String> {
    std::time::Duration::try_from_secs_f64(v)
        .map_err(|_| format!("--{what} must be a non-negative number of seconds, not {v}"))
}

fn diagnose(args: &DiagnoseArgs) -> std::process::ExitCode {
    use redis_clients_exporter::targets::triage;
    use redis_clients_exporter::web::render;
    // `host:port` is `redis://host:port`, as for `/scrape` and service discovery.
    let url = if args.url.contains("://") {
        args.url.clone()
    } else {
        format!("redis://{}", args.url)
    };
    let overrides = Overrides {
        targets: vec![url],
        password_file: args.password_file.clone(),
        ..Overrides::default()
    };
    // The environment still supplies what the daemon would take from it (a password variable).
    let parsed = config::load(None, &overrides)
        .map_err(|e| e.to_string())
        .and_then(|cfg| {
            cfg.targets
                .into_iter()
                .next()
                .ok_or_else(|| "no target".to_string())
        })
        .and_then(|t| {
            Ok(triage::Options {
                target: t,
                sample: seconds("sample-seconds", args.sample_seconds)?,
                wait_for_slot: seconds("timeout-seconds", args.timeout_seconds)?,
                idle_threshold_seconds: args.idle_threshold_seconds,
                top_k: 50,
            })
        });
    let opts = match parsed {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match one_thread_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(triage::run(&opts, |msg| eprintln!("{msg}"))) {
        Ok(report) => {
            let out = match args.format {
                Format::Text => render::text(&report),
                Format::Markdown => render::markdown(&report),
                Format::Json => serde_json::to_string_pretty(&report)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
            };
            // `diagnose ... | head`: a reader that closed the pipe has what it wanted.
            write_stdout(&format!("{out}\n"));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; a closed stdout (`| head`) ends the output quietly instead of panicking
/// as `println!` does. Returns false when stdout is gone.
fn write_stdout(text: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

/// The target and selector of `close`, from redis-cli-style flags.
fn close_target(
    args: &CloseArgs,
) -> Result<(config::Target, redis_clients_exporter::diagnose::Selector), String> {
    use redis_clients_exporter::analysis::aggregate::Dimension;
    use redis_clients_exporter::diagnose::{Only, Selector};
    use redis_clients_exporter::web::render::url_encode;
    let user = args
        .user
        .as_deref()
        .map_or(String::new(), |u| format!("{}@", url_encode(u)));
    let url = match &args.socket {
        Some(path) => format!("unix://{}", path.display()),
        None => {
            let host = if args.host.contains(':') {
                format!("[{}]", args.host)
            } else {
                args.host.clone()
            };
            let scheme = if args.tls { "rediss" } else { "redis" };
            format!("{scheme}://{user}{host}:{}/{}", args.port, args.db)
        }
    };
    let overrides = Overrides {
        targets: vec![url],
        password_file: args.password_file.clone(),
        ..Overrides::default()
    };
    let mut target = config::load(None, &overrides)
        .map_err(|e| e.to_string())?
        .targets
        .into_iter()
        .next()
        .ok_or_else(|| "no target".to_string())?;
    if target.password == config::Secret::None && std::env::var_os("REDISCLI_AUTH").is_some() {
        target.password = config::Secret::Env("REDISCLI_AUTH".into());
    }
    let (group, key) = match (
        &args.source_ip,
        &args.client_name,
        &args.lib_name,
        &args.address_prefix,
    ) {
        (Some(k), ..) => (Dimension::SourceIp, k),
        (_, Some(k), ..) => (Dimension::ClientName, k),
        (_, _, Some(k), _) => (Dimension::LibName, k),
        (.., Some(k)) => (Dimension::AddressPrefix, k),
        _ => {
            return Err(
                "name one group: --source-ip, --client-name, --lib-name or --address-prefix".into(),
            )
        }
    };
    if group == Dimension::AddressPrefix && !key.ends_with(".0/24") {
        return Err(format!("--address-prefix must be a.b.c.0/24, not {key}"));
    }
    let only = match args.only {
        CloseOnly::Idle => Only::Idle,
        CloseOnly::Unused => Only::Unused,
        CloseOnly::IdlePubsub => Only::IdlePubsub,
        CloseOnly::Blocked => Only::Blocked,
        CloseOnly::OutputBuffer => Only::OutputBuffer,
    };
    Ok((
        target,
        Selector {
            group,
            key: key.clone(),
            only,
            idle_seconds: args.idle_seconds,
            sources: String::new(),
        },
    ))
}

fn close(args: &CloseArgs) -> std::process::ExitCode {
    use redis_clients_exporter::targets::close;
    let (target, selector) = match close_target(args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match one_thread_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let what = redis_clients_exporter::diagnose::shell::visible(&selector.describe());
    match rt.block_on(close::run(&target, &selector)) {
        Ok(c) if c.matched == 0 => {
            println!("no connection of {what} matches (any more): nothing to close");
            std::process::ExitCode::SUCCESS
        }
        Ok(c) => {
            println!(
                "{} connection(s) closed ({} matched {what} {})",
                c.closed,
                c.matched,
                selector.only.as_str()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn relieve(args: &RelieveArgs) -> std::process::ExitCode {
    use redis_clients_exporter::cli::relieve::{self as client, Exporter};
    let fail = |code: u8, e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        std::process::ExitCode::from(code)
    };
    let mut set = serde_json::Map::new();
    for s in &args.set {
        let Some((k, v)) = s.split_once('=') else {
            return fail(
                2,
                &format!("--set {s}: expected PARAM=VALUE, e.g. timeout=30"),
            );
        };
        let Ok(v) = v.trim().parse::<i64>() else {
            return fail(2, &format!("--set {s}: the value must be an integer"));
        };
        set.insert(k.trim().replace('-', "_"), v.into());
    }
    let mut select = serde_json::Map::new();
    for (k, v) in [
        ("addr", &args.addr),
        ("name", &args.name),
        ("lib", &args.lib),
        ("user", &args.user),
        ("finding", &args.finding),
    ] {
        if let Some(v) = v {
            select.insert(k.into(), v.clone().into());
        }
    }
    if let Some(i) = args.min_idle {
        select.insert("min_idle_seconds".into(), i.into());
    }
    if args.include_pubsub {
        select.insert("include_pubsub".into(), true.into());
    }
    if args.include_blocked {
        select.insert("include_blocked".into(), true.into());
    }
    let exporter = match Exporter::new(
        &args.exporter,
        args.auth_user.as_deref(),
        args.password_file.as_ref(),
        args.ca_file.as_ref(),
    ) {
        Ok(e) => e,
        Err(e) => return fail(2, &e),
    };
    let rt = match one_thread_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let request = serde_json::json!({ "target": args.target, "select": select, "set": set });
    let exporter = &exporter;
    let execute = |token: String| {
        let body = serde_json::json!({ "target": args.target, "token": token });
        async move {
            let (status, done) = exporter.post("/relief/execute", &body).await?;
            if status != 200 {
                return Err(client::refusal(status, &done));
            }
            print_reply(args.json, &done, client::describe_execute);
            Ok(())
        }
    };
    let run = async {
        if let Some(token) = &args.token {
            // The reviewed preview, not a new one: what was read is what is done.
            return execute(token.clone()).await;
        }
        let (status, preview) = exporter.post("/relief/preview", &request).await?;
        if status != 200 {
            return Err(client::refusal(status, &preview));
        }
        print_reply(args.json, &preview, client::describe_preview);
        let token = preview["token"].as_str().map(String::from);
        match (args.execute, token) {
            (false, Some(token)) => {
                if !args.json {
                    write_stdout(&format!("Nothing was changed. To do exactly this (the exporter re-checks each connection first), run the same command with --execute --token {token}; with --execute alone it acts on a new preview.\n"));
                }
                Ok(())
            }
            (false, None) | (true, None) => Ok(()),
            (true, Some(token)) => execute(token).await,
        }
    };
    match rt.block_on(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(1, &e),
    }
}

/// A relief reply on stdout: as pretty JSON with `--json`, else as `describe` words it.
fn print_reply(json: bool, reply: &serde_json::Value, describe: fn(&serde_json::Value) -> String) {
    if json {
        write_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(reply).unwrap_or_default()
        ));
    } else {
        write_stdout(&describe(reply));
    }
}

/// The runtime of a one-shot subcommand (diagnose, close, relieve): one thread is plenty for one
/// connection; a failure to start it is said and exits 1.
fn one_thread_runtime() -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::ExitCode::FAILURE
        })
}
