//! The binary's edge: flags, logging, signals. Everything else lives in the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
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
    /// Redis to poll (redis://, rediss://, unix://); repeat for several. Replaces the file's targets.
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
    /// Protect /metrics with TLS and/or basic auth (Prometheus web config file format).
    #[arg(long, value_name = "PATH")]
    web_config_file: Option<PathBuf>,
    /// Validate the configuration, print a summary without secrets, and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        listen: cli.listen.clone(),
        targets: cli.targets.clone(),
        password_file: cli.password_file.clone(),
        top_k: cli.top_k,
        log_format: cli.log_format,
        web_config_file: cli.web_config_file.clone(),
    };
    let cfg = match config::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!(
            "configuration OK: listen {}, top_k {}, {} target(s)",
            cfg.listen,
            cfg.top_k,
            cfg.targets.len()
        );
        for t in &cfg.targets {
            println!("  {} (poll every {:?})", t.label, t.poll_interval);
        }
        for g in &cfg.topology.groups {
            println!(
                "  {} (expands to its nodes, poll every {:?})",
                g.name, g.node.poll_interval
            );
        }
        if let Some(f) = &cfg.topology.targets_file {
            println!(
                "  targets file {} (read every {:?})",
                f.path.display(),
                f.interval
            );
        }
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
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
