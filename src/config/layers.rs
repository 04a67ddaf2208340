//! The file and environment layers read into a [`RawConfig`] (config-rs), the environment
//! variables checked against the known keys, and config-rs errors redacted.

use std::path::Path;

use serde::Deserialize;

use crate::config::raw::RawConfig;
use crate::config::service_link::is_service_link;
use crate::config::{invalid, ConfigError, ENV_PREFIX};

/// The file and environment layers, merged; the origin that errors name.
pub(super) fn read_layers(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(RawConfig, String), ConfigError> {
    let origin = file
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "environment".to_string());
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Load {
                origin,
                message: "file not found".to_string(),
            });
        }
        builder = builder.add_source(config::File::from(path));
    }
    let env_map = config_env(env)?;
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .source(Some(env_map)),
    );
    let raw: RawConfig = deserialize(builder, &origin)?;
    Ok((raw, origin))
}

/// Where the variables that are not configuration are reported from.
const ENV_ORIGIN: &str = "environment";

/// The `REDIS_CLIENTS_EXPORTER_*` variables that are configuration, for config-rs. Kubernetes
/// service links are left out ([`is_service_link`]); any other variable must name a
/// configuration key, else the error names the variable (config-rs would blame the file).
fn config_env(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<config::Map<String, String>, ConfigError> {
    let keys = config_keys();
    let mut out = config::Map::new();
    for (name, value) in env {
        let Some(rest) = name
            .strip_prefix(ENV_PREFIX)
            .and_then(|r| r.strip_prefix('_'))
            .filter(|r| !r.is_empty())
        else {
            continue;
        };
        if is_service_link(&name, &value) {
            continue;
        }
        // `AUTH_PROFILES__APP__PASSWORD_FILE`: config-rs nests at `__`; the first part must be
        // a key (config-rs checks the rest).
        let top = rest.split("__").next().unwrap_or(rest).to_ascii_lowercase();
        if !keys.contains(&top.as_str()) {
            return Err(invalid(
                ENV_ORIGIN,
                name.clone(),
                format!(
                    "unknown variable: there is no configuration key `{top}` (keys: {})",
                    keys.join(", ")
                ),
            ));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// The top-level configuration keys, as serde knows them (so a key added to [`RawConfig`] is
/// known here without a second list).
pub(crate) fn config_keys() -> &'static [&'static str] {
    struct_fields::<RawConfig>()
}

/// The field names of a `#[derive(Deserialize)]` struct: serde hands them to
/// `deserialize_struct`, which this deserializer records and then stops.
pub(crate) fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// Builds the sources and deserializes them; an error is a `Load` error of `origin`, redacted.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    origin: &str,
) -> Result<T, ConfigError> {
    builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError::Load {
            origin: origin.to_string(),
            message: redact_config_error(&e.to_string()),
        })
}

/// config-rs quotes offending values in its messages; a password could be one of them.
fn redact_config_error(msg: &str) -> String {
    if msg.to_ascii_lowercase().contains("password") {
        // Keep the key path, drop anything quoted that could be the value.
        let mut out = String::new();
        let mut in_quote = false;
        for ch in msg.chars() {
            if ch == '"' {
                in_quote = !in_quote;
                out.push_str(if in_quote { "\"<redacted>" } else { "\"" });
            } else if !in_quote {
                out.push(ch);
            }
        }
        out
    } else {
        msg.to_string()
    }
}
