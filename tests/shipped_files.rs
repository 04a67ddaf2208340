//! The shipped alert rules, dashboards and deploy files pass their checks: promtool (check and
//! unit tests), the mutation check that proves every threshold and `for` is pinned by a test,
//! the dashboard linter, and the deploy linters. The scripts say what they check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

fn run(script: &str, env: &[(&str, &str)]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/{script}"))
        .current_dir(root)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("bash {script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    println!("{text}");
}

#[test]
fn alert_rules_and_dashboards_pass_promtool_and_their_linters() {
    if !common::require_tool("promtool", "prometheus")
        || !common::require_tool("python3", "python3")
    {
        return;
    }
    run("alerts/check.sh", &[("MUTATIONS", "1")]);
}

#[test]
fn deploy_files_pass_their_checks() {
    // CI installs every linter, so there a missing one is a failure, not a skip.
    let strict = if common::under_ci() { "1" } else { "0" };
    run(
        "deploy/check.sh",
        &[
            ("EXPORTER_BIN", env!("CARGO_BIN_EXE_redis-clients-exporter")),
            ("DEPLOY_CHECK_STRICT", strict),
        ],
    );
}
