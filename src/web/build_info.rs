//! What `redis_clients_exporter_build_info` says about this binary, with node_exporter's
//! label names where they exist (`version`, `revision`, `branch`, `tags`) and `rustversion`
//! for Go's `goversion`. Set at build time by build.rs (`unknown` without git).

/// The crate's version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit built, or `unknown`.
pub const REVISION: &str = env!("RCE_BUILD_REVISION");
/// The git branch built (`HEAD` when detached), or `unknown`.
pub const BRANCH: &str = env!("RCE_BUILD_BRANCH");
/// The version of rustc that built it.
pub const RUST_VERSION: &str = env!("RCE_BUILD_RUST_VERSION");
/// The Cargo profile (`release`, `debug`): Go's build tags have no closer match.
pub const TAGS: &str = env!("RCE_BUILD_TAGS");

/// The labels of `redis_clients_exporter_build_info`, in name order.
pub fn labels() -> [(&'static str, &'static str); 5] {
    [
        ("branch", BRANCH),
        ("revision", REVISION),
        ("rustversion", RUST_VERSION),
        ("tags", TAGS),
        ("version", VERSION),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(args: &[&str]) -> Option<String> {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    #[test]
    fn revision_and_branch_are_the_checkouts_or_unknown() {
        match git(&["rev-parse", "HEAD"]) {
            Some(head) => {
                assert_eq!(REVISION, head);
                assert_eq!(
                    Some(BRANCH.to_string()),
                    git(&["rev-parse", "--abbrev-ref", "HEAD"])
                );
            }
            None => assert_eq!((REVISION, BRANCH), ("unknown", "unknown")),
        }
        assert!(RUST_VERSION.split('.').count() >= 3, "{RUST_VERSION}");
        assert!(matches!(TAGS, "debug" | "release") || !TAGS.is_empty());
    }
}
