//! Reading the JSON bytes into the raw types, every serde error turned into
//! a field path and a reason with its line and column.

use super::error::ConfigError;
use super::raw::RawConfig;

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
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(ConfigError::new(
            "configuration",
            "starts with a byte-order mark (EF BB BF), which JSON does not allow; save it as UTF-8 without a BOM",
        ));
    }
    // serde's derived structs also accept arrays (fields by position); a
    // config written that way is a mistake, so objects are checked first, on
    // a syntax tree. That tree keeps only the last of repeated keys, so the
    // typed read below is from the bytes: it refuses repeated keys, and its
    // errors carry a line and column.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ConfigError::new("configuration", e.to_string()))?;
    require_objects(&value)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let reason = match repeated_key(&inner) {
            Some(key) => format!(
                "`{key}` is given twice in one object (again at line {} column {}); each key may appear once",
                inner.line(),
                inner.column()
            ),
            None => inner.to_string(),
        };
        ConfigError::new(field_of(&path, &reason), reason)
    })
}

/// The key of serde's "duplicate field" error.
fn repeated_key(e: &serde_json::Error) -> Option<String> {
    let text = e.to_string();
    let rest = text.strip_prefix("duplicate field `")?;
    rest.split('`').next().map(str::to_string)
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
/// or repeated field is named by the error itself, in the object at the path.
fn field_of(path: &str, reason: &str) -> String {
    let parent = match path {
        "." | "?" => "",
        p => p,
    };
    let named = reason
        .strip_prefix("missing field `")
        .or_else(|| {
            reason
                .strip_prefix('`')
                .filter(|r| r.contains("` is given twice"))
        })
        .and_then(|rest| rest.split('`').next());
    match (parent, named) {
        ("", Some(name)) => name.to_string(),
        (p, Some(name)) => format!("{p}.{name}"),
        ("", None) => "configuration".to_string(),
        (p, None) => p.to_string(),
    }
}
