//! A refused configuration, and reading the JSON into the raw types with
//! every serde error turned into a field path and a reason.

use std::fmt;

use super::raw::RawConfig;

/// A refused configuration: which field, and why. Displayed as one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Reads the raw config from JSON text. Empty (or all-whitespace) input is
/// refused with its own message: Istio hands a plugin with no
/// `pluginConfig` a zero-length configuration.
pub(super) fn parse(bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::new(
            "configuration",
            "is empty; sticky-split needs a JSON object with at least \"pools\"",
        ));
    }
    // serde's derived structs also accept arrays (fields by position); a
    // config written that way is a mistake, so objects are checked first.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ConfigError::new("configuration", e.to_string()))?;
    require_objects(&value)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let reason = e.into_inner().to_string();
        ConfigError::new(field_of(&path, &reason), reason)
    })
}

/// Where the config holds objects (by path; `*` is every array element).
const OBJECT_PATHS: &[&[&str]] = &[
    &["pools", "*"],
    &["cookie"],
    &["hashOn"],
    &["rules", "*"],
    &["rules", "*", "match"],
    &["rules", "*", "match", "headers", "*"],
    &["rules", "*", "match", "query", "*"],
    &["rules", "*", "match", "cookies", "*"],
    &["rules", "*", "match", "path"],
];

fn require_objects(value: &serde_json::Value) -> Result<(), ConfigError> {
    if !value.is_object() {
        return Err(ConfigError::new("configuration", "must be a JSON object"));
    }
    OBJECT_PATHS
        .iter()
        .try_for_each(|path| require_object_at(value, path, String::new()))
}

fn require_object_at(
    value: &serde_json::Value,
    path: &[&str],
    field: String,
) -> Result<(), ConfigError> {
    match path.split_first() {
        None if value.is_object() => Ok(()),
        None => Err(ConfigError::new(field, "must be a JSON object")),
        Some((&"*", rest)) => match value.as_array() {
            Some(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| require_object_at(item, rest, format!("{field}[{i}]"))),
            None => Ok(()), // serde names the wrong type
        },
        Some((key, rest)) => match value.get(*key) {
            Some(v) if field.is_empty() => require_object_at(v, rest, key.to_string()),
            Some(v) => require_object_at(v, rest, format!("{field}.{key}")),
            None => Ok(()),
        },
    }
}

/// The field a serde error is about. serde_path_to_error gives the path to
/// the value being read (`.` for the top level, `?` before any); a missing
/// field is named by the error itself.
fn field_of(path: &str, reason: &str) -> String {
    let parent = match path {
        "." | "?" => "",
        p => p,
    };
    let missing = reason
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (parent, missing) {
        ("", Some(name)) => name.to_string(),
        (p, Some(name)) => format!("{p}.{name}"),
        ("", None) => "configuration".to_string(),
        (p, None) => p.to_string(),
    }
}
