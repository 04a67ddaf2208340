//! Build metadata for `redis_clients_exporter_build_info` (as node_exporter's `revision`,
//! `branch`, `goversion`, `tags`): the git commit and branch when the source is a git checkout
//! with git installed, `unknown` otherwise (a tarball build), and the compiler's version.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let git = |args: &[&str]| output("git", args);
    let revision = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let branch = git(&["rev-parse", "--abbrev-ref", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    // `rustc 1.91.0 (f8297e351 2025-10-28)` -> `1.91.0`.
    let rust_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=RCE_BUILD_REVISION={revision}");
    println!("cargo:rustc-env=RCE_BUILD_BRANCH={branch}");
    println!("cargo:rustc-env=RCE_BUILD_RUST_VERSION={rust_version}");
    println!("cargo:rustc-env=RCE_BUILD_TAGS={profile}");
    // A new commit or a checkout changes HEAD or the ref it names; a tarball has neither.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let common = git(&["rev-parse", "--git-common-dir"]).unwrap_or(dir.clone());
            let common = if std::path::Path::new(&common).is_absolute() {
                common
            } else {
                format!(
                    "{}/{common}",
                    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()
                )
            };
            let ref_file = format!("{common}/{head_ref}");
            if std::path::Path::new(&ref_file).exists() {
                println!("cargo:rerun-if-changed={ref_file}");
            } else {
                // A packed ref: packed-refs changes instead.
                println!("cargo:rerun-if-changed={common}/packed-refs");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
