//! Configuration of everything that turns into more than one poller or into pollers decided at
//! run time: auth profiles, cluster and Sentinel groups, `/scrape` dynamic targets and the
//! watched targets file. The parsing of one target stays in `config.rs`; this module resolves
//! the new keys with the same rules (errors name the key and the file, secrets stay `Secret`s).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{
    deserialize, invalid, resolve_target, seconds, ConfigError, Endpoint, Overrides,
    PasswordSources, RawConfig, RawTarget, Secret, Target,
};

/// Named credentials: a username and a password source, never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthProfile {
    pub username: Option<String>,
    pub password: Secret,
}

pub type AuthProfiles = BTreeMap<String, AuthProfile>;

pub(crate) fn auth_profiles(raw: &RawConfig, origin: &str) -> Result<AuthProfiles, ConfigError> {
    let mut out = AuthProfiles::new();
    for (name, p) in raw.auth_profiles.iter().flatten() {
        let key = format!("auth_profiles.{name}");
        let sources = PasswordSources {
            password: &p.password,
            file: &p.password_file,
            env: &p.password_env,
        };
        if sources.count() > 1 {
            return Err(invalid(
                origin,
                format!("{key}.password"),
                "set only one of password, password_file, password_env",
            ));
        }
        let password = sources.secret().unwrap_or(Secret::None);
        out.insert(
            name.clone(),
            AuthProfile {
                username: p.username.clone(),
                password,
            },
        );
    }
    Ok(out)
}

/// A target that expands to several nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The `cluster` label, and the prefix of each node's `target` label.
    pub name: String,
    pub kind: GroupKind,
    /// What every node is polled with (credentials, timeouts, TLS); its endpoint is the seed.
    pub node: Target,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GroupKind {
    /// Redis Cluster: nodes from CLUSTER SHARDS (7.0+) or CLUSTER NODES, asked of the seed and
    /// then of any known node.
    Cluster,
    /// Sentinel: the current primary of `master` and its replicas, asked of the sentinels.
    Sentinel {
        master: String,
        sentinels: Vec<Target>,
    },
}

impl Group {
    /// The poller target of one node of this group: the template with the node's endpoint.
    pub fn node_target(&self, endpoint: Endpoint) -> Target {
        let mut t = self.node.clone();
        t.label = format!("{}/{}", self.name, endpoint.label());
        t.endpoint = endpoint;
        t
    }
}

/// Resolves a `cluster`/`sentinel_master` target into a [`Group`]; `None` for a plain target.
pub(crate) fn group(
    key: &str,
    t: &RawTarget,
    d: &RawConfig,
    o: &Overrides,
    origin: &str,
    profiles: &AuthProfiles,
) -> Result<Option<Group>, ConfigError> {
    let cluster = t.cluster.unwrap_or(false);
    let sentinel = t.sentinel_master.is_some() || t.sentinels.is_some();
    if !cluster && !sentinel {
        if t.sentinel_auth.is_some() {
            return Err(invalid(
                origin,
                format!("{key}.sentinel_auth"),
                "needs sentinel_master and sentinels",
            ));
        }
        return Ok(None);
    }
    if cluster && sentinel {
        return Err(invalid(
            origin,
            format!("{key}.cluster"),
            "a target is either a cluster or a Sentinel master set, not both",
        ));
    }
    let strip = |t: &RawTarget| RawTarget {
        cluster: None,
        sentinel_master: None,
        sentinels: None,
        sentinel_auth: None,
        ..t.clone()
    };
    if cluster {
        let node = resolve_target(key, strip(t), d, o, origin, profiles)?;
        if matches!(node.endpoint, Endpoint::Unix(_)) {
            return Err(invalid(
                origin,
                format!("{key}.address"),
                "a cluster seed must be a redis:// or rediss:// address",
            ));
        }
        return Ok(Some(Group {
            name: node.label.clone(),
            kind: GroupKind::Cluster,
            node,
        }));
    }
    let master = t
        .sentinel_master
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid(origin, format!("{key}.sentinel_master"), "is missing"))?;
    let addrs = t.sentinels.clone().unwrap_or_default();
    if addrs.is_empty() {
        return Err(invalid(
            origin,
            format!("{key}.sentinels"),
            "name at least one sentinel address (redis://host:26379)",
        ));
    }
    if t.address.is_some() {
        return Err(invalid(
            origin,
            format!("{key}.address"),
            "a Sentinel target has no address: the sentinels say where the nodes are",
        ));
    }
    let mut sentinels = Vec::with_capacity(addrs.len());
    for (i, a) in addrs.iter().enumerate() {
        let skey = format!("{key}.sentinels[{i}]");
        let s = resolve_target(
            &skey,
            RawTarget {
                address: Some(a.clone()),
                auth: t.sentinel_auth.clone(),
                ..Default::default()
            },
            // The sentinels' credentials come only from `sentinel_auth`, never from the data
            // nodes' defaults.
            &RawConfig {
                username: None,
                password: None,
                password_file: None,
                password_env: None,
                ..d.clone()
            },
            &Overrides {
                password_file: None,
                ..o.clone()
            },
            origin,
            profiles,
        )?;
        sentinels.push(s);
    }
    // The template: the data nodes' credentials and timeouts; the endpoint is replaced per node.
    // Its address is a placeholder with the sentinels' scheme (TLS sentinels, TLS nodes), so
    // that credentials written in a sentinel's URL never reach the data nodes.
    let scheme = if addrs[0].starts_with("rediss://") {
        "rediss"
    } else {
        "redis"
    };
    let node = resolve_target(
        key,
        RawTarget {
            address: Some(format!("{scheme}://sentinel-discovered:6379")),
            ..strip(t)
        },
        d,
        o,
        origin,
        profiles,
    )?;
    let name = t.alias.clone().unwrap_or_else(|| master.clone());
    Ok(Some(Group {
        name,
        kind: GroupKind::Sentinel { master, sentinels },
        node,
    }))
}

/// Builds targets named at run time (`/scrape?target=`, the targets file) with the same rules
/// and defaults as the configuration's own targets.
#[derive(Clone, PartialEq)]
pub struct Resolver {
    raw: Arc<RawConfig>,
    overrides: Overrides,
    profiles: AuthProfiles,
}

impl std::fmt::Debug for Resolver {
    // RawConfig may hold a top-level password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("profiles", &self.profiles.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScrapeTargetError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown auth profile `{0}`")]
    UnknownProfile(String),
}

impl Resolver {
    /// A `/scrape` target: `redis://` or `rediss://` only (a network caller must not make the
    /// exporter open local sockets), no credentials in the URL, `auth` names a profile.
    pub fn scrape_target(
        &self,
        address: &str,
        auth: Option<&str>,
    ) -> Result<Target, ScrapeTargetError> {
        let parsed = crate::config::parse_address(address).map_err(ScrapeTargetError::Invalid)?;
        if parsed.username.is_some() || parsed.password.is_some() {
            return Err(ScrapeTargetError::Invalid(
                "credentials are not accepted in the target URL; name an auth profile with &auth=NAME"
                    .into(),
            ));
        }
        if matches!(parsed.endpoint, Endpoint::Unix(_)) {
            return Err(ScrapeTargetError::Invalid(
                "only redis:// and rediss:// targets can be scraped dynamically".into(),
            ));
        }
        if let Some(name) = auth {
            if !self.profiles.contains_key(name) {
                return Err(ScrapeTargetError::UnknownProfile(name.to_string()));
            }
        }
        let raw = RawTarget {
            address: Some(address.to_string()),
            auth: auth.map(str::to_string),
            ..Default::default()
        };
        resolve_target(
            "target",
            raw,
            &self.raw,
            &self.overrides,
            "/scrape",
            &self.profiles,
        )
        .map_err(|e| ScrapeTargetError::Invalid(e.to_string()))
    }

    /// Reads the targets file: `targets:` with entries like the configuration's `targets`
    /// (plain targets only). Errors name the file and the key.
    pub fn targets_file(&self, path: &Path) -> Result<Vec<Target>, ConfigError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            targets: Vec<RawTarget>,
        }
        let origin = path.display().to_string();
        // YAML reads JSON too, so one parser serves both extensions.
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => config::FileFormat::Toml,
            _ => config::FileFormat::Yaml,
        };
        let file: File = deserialize(
            config::Config::builder().add_source(config::File::from(path).format(format)),
            &origin,
        )?;
        let mut out: Vec<Target> = Vec::with_capacity(file.targets.len());
        for (i, t) in file.targets.into_iter().enumerate() {
            let key = format!("targets[{i}]");
            if t.cluster.is_some() || t.sentinel_master.is_some() || t.sentinels.is_some() {
                return Err(invalid(
                    &origin,
                    format!("{key}.cluster"),
                    "clusters and Sentinel sets belong in the main configuration",
                ));
            }
            let target =
                resolve_target(&key, t, &self.raw, &self.overrides, &origin, &self.profiles)?;
            if out.iter().any(|x| x.label == target.label) {
                return Err(invalid(
                    &origin,
                    format!("{key}.alias"),
                    format!("target label `{}` is used twice", target.label),
                ));
            }
            out.push(target);
        }
        Ok(out)
    }
}

/// `/scrape?target=` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicConfig {
    /// New targets beyond this many are refused (503) until idle ones expire.
    pub max_targets: usize,
    /// A dynamic target not scraped for this long is stopped and forgotten.
    pub idle_timeout: Duration,
    /// How long the first scrape of a new target waits for its first poll.
    pub first_poll_wait: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetsFile {
    pub path: PathBuf,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopologyConfig {
    pub groups: Vec<Group>,
    /// How often clusters and Sentinel sets are asked again (earlier when a node's role or
    /// reachability changes).
    pub discovery_interval: Duration,
    pub dynamic: DynamicConfig,
    pub targets_file: Option<TargetsFile>,
    pub resolver: Resolver,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            groups: Vec::new(),
            discovery_interval: Duration::from_secs(30),
            dynamic: DynamicConfig {
                max_targets: 256,
                idle_timeout: Duration::from_secs(600),
                first_poll_wait: Duration::from_secs(5),
            },
            targets_file: None,
            resolver: Resolver {
                raw: Arc::new(RawConfig::default()),
                overrides: Overrides::default(),
                profiles: AuthProfiles::new(),
            },
        }
    }
}

impl TopologyConfig {
    /// Resolves the topology keys; the auth profiles given here are available to `/scrape` and
    /// the targets file as well.
    pub(crate) fn resolve(
        raw: &RawConfig,
        o: &Overrides,
        origin: &str,
        groups: Vec<Group>,
        profiles: AuthProfiles,
    ) -> Result<Self, ConfigError> {
        let max_targets = raw.scrape_max_targets.unwrap_or(256);
        if max_targets > 100_000 {
            return Err(invalid(
                origin,
                "scrape_max_targets",
                "must be at most 100000 (0 turns /scrape off)",
            ));
        }
        let targets_file = match &raw.targets_file {
            Some(path) => Some(TargetsFile {
                path: path.clone(),
                interval: seconds(
                    origin,
                    "targets_file_interval_seconds",
                    raw.targets_file_interval_seconds,
                    30.0,
                )?,
            }),
            None => None,
        };
        // Without the configuration's own target list, so that editing a target does not
        // count as a change of the targets file's source (which would restart its pollers).
        let resolver = Resolver {
            raw: Arc::new(RawConfig {
                targets: None,
                target: None,
                ..raw.clone()
            }),
            overrides: o.clone(),
            profiles,
        };
        if let Some(f) = &targets_file {
            // A file that exists must be valid at start; one that does not yet exist is waited for.
            if f.path.exists() {
                resolver.targets_file(&f.path)?;
            }
        }
        Ok(Self {
            groups,
            discovery_interval: seconds(
                origin,
                "discovery_interval_seconds",
                raw.discovery_interval_seconds,
                30.0,
            )?,
            dynamic: DynamicConfig {
                max_targets,
                idle_timeout: seconds(
                    origin,
                    "scrape_idle_timeout_seconds",
                    raw.scrape_idle_timeout_seconds,
                    600.0,
                )?,
                first_poll_wait: seconds(
                    origin,
                    "scrape_first_poll_wait_seconds",
                    raw.scrape_first_poll_wait_seconds,
                    5.0,
                )?,
            },
            targets_file,
            resolver,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_with_env;

    fn load(body: &str) -> Result<crate::config::Config, ConfigError> {
        let f = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("tempfile");
        std::fs::write(f.path(), body).expect("write");
        load_with_env(Some(f.path()), &Overrides::default(), Vec::new())
    }

    #[test]
    fn one_password_source_per_layer_and_the_target_layer_wins() {
        for (body, key) in [
            (
                "[auth_profiles.app]\npassword = \"a\"\npassword_env = \"PW\"\n",
                "auth_profiles.app.password",
            ),
            (
                "[[targets]]\naddress = \"redis://h:6379\"\npassword_file = \"/pw\"\npassword_env = \"PW\"\n",
                "targets[0].password",
            ),
            (
                "[[targets]]\naddress = \"redis://:x@h:6379\"\npassword_env = \"PW\"\n",
                "targets[0].password",
            ),
        ] {
            match load(body) {
                Err(ConfigError::Invalid { key: k, message, .. }) => {
                    assert_eq!(k, key, "{body}");
                    assert!(message.contains("only one of"), "{message}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        let c = load(
            "password_env = \"TOP\"\n\
             [[targets]]\naddress = \"redis://a:6379\"\npassword_file = \"/own\"\n\
             [[targets]]\naddress = \"redis://b:6379\"\n",
        )
        .expect("valid");
        assert_eq!(c.targets[0].password, Secret::File("/own".into()));
        assert_eq!(c.targets[1].password, Secret::Env("TOP".into()));
    }

    #[test]
    fn cluster_and_sentinel_targets_become_groups() {
        let c = load(
            "[auth_profiles.app]\nusername = \"exp\"\npassword_env = \"PW\"\n\
             [[targets]]\naddress = \"redis://10.0.0.1:7000\"\ncluster = true\nalias = \"orders\"\nauth = \"app\"\n\
             [[targets]]\nsentinel_master = \"mymaster\"\nsentinels = [\"redis://s1:26379\", \"redis://s2:26379\"]\n\
             [[targets]]\naddress = \"redis://plain:6379\"\n",
        )
        .expect("valid");
        assert_eq!(c.targets.len(), 1);
        let g = &c.topology.groups;
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].name, "orders");
        assert_eq!(g[0].kind, GroupKind::Cluster);
        assert_eq!(g[0].node.username.as_deref(), Some("exp"));
        assert_eq!(g[0].node.password, Secret::Env("PW".into()));
        let n = g[0].node_target(Endpoint::Tcp {
            host: "10.0.0.2".into(),
            port: 7001,
        });
        assert_eq!(n.label, "orders/10.0.0.2:7001");
        assert_eq!(g[1].name, "mymaster");
        match &g[1].kind {
            GroupKind::Sentinel { master, sentinels } => {
                assert_eq!(master, "mymaster");
                assert_eq!(sentinels.len(), 2);
                assert_eq!(sentinels[1].label, "s2:26379");
            }
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn topology_errors_name_the_key() {
        let cases = [
            (
                "[[targets]]\nsentinel_master = \"m\"\n",
                "targets[0].sentinels",
            ),
            (
                "[[targets]]\naddress = \"redis://h:1\"\nauth = \"nope\"\n",
                "targets[0].auth",
            ),
            (
                "[[targets]]\naddress = \"redis://h:1\"\ncluster = true\nsentinels = [\"redis://s:1\"]\nsentinel_master = \"m\"\n",
                "targets[0].cluster",
            ),
            (
                "[auth_profiles.a]\npassword = \"x\"\npassword_file = \"/f\"\n",
                "auth_profiles.a.password",
            ),
            (
                "[auth_profiles.a]\npassword = \"x\"\n[[targets]]\naddress = \"redis://h:1\"\nauth = \"a\"\npassword = \"y\"\n",
                "targets[0].auth",
            ),
        ];
        for (body, key) in cases {
            let e = load(body).expect_err(body).to_string();
            assert!(e.contains(key), "{body}: {e}");
            assert!(!e.contains("\"x\""), "{e}");
        }
    }

    #[test]
    fn scrape_targets_take_credentials_from_profiles_only() {
        let c = load(
            "[auth_profiles.ops]\nusername = \"u\"\npassword = \"s3cret\"\n[[targets]]\naddress = \"redis://h:1\"\n",
        )
        .expect("valid");
        let r = &c.topology.resolver;
        let t = r
            .scrape_target("redis://10.1.1.1:6380", Some("ops"))
            .expect("ok");
        assert_eq!(t.label, "10.1.1.1:6380");
        assert_eq!(t.password, Secret::Value("s3cret".into()));
        assert_eq!(t.username.as_deref(), Some("u"));
        let e = r
            .scrape_target("redis://u:pw@10.1.1.1:6380", None)
            .expect_err("credentials in URL");
        assert!(e.to_string().contains("auth profile"), "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
        assert!(r.scrape_target("unix:///tmp/r.sock", None).is_err());
        assert_eq!(
            r.scrape_target("redis://h:1", Some("nope")),
            Err(ScrapeTargetError::UnknownProfile("nope".into()))
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
