//! Plugin configuration: the JSON users write (serde types, camelCase, unknown
//! fields refused) and its validated runtime form.
//!
//! Parsing is two steps: serde checks shapes and types, then [`Config::from_json`]
//! checks meaning (tokens, duplicates, weights, combinations) and precomputes
//! what the request path needs, so per-request work is lookups only.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::cookie::SetCookieTemplate;
use crate::pick::WeightedPicker;
use crate::token;

/// Defaults, documented in the README's field table.
pub const DEFAULT_COOKIE_NAME: &str = "sticky-split";
pub const DEFAULT_MAX_AGE: u32 = 2_592_000;
pub const DEFAULT_ROUTE_HEADER: &str = "x-sticky-split-pool";
pub const MAX_POOLS: usize = 1024;
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_CLUSTER_LEN: usize = 255;

/// A refused configuration: which field, and why. Displayed as one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
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

// ---------------------------------------------------------------------------
// What users write.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    pools: Vec<RawPool>,
    #[serde(default)]
    cookie: RawCookie,
    route_header: Option<String>,
    cluster_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPool {
    name: String,
    weight: u32,
    cluster: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCookie {
    name: Option<String>,
    max_age: Option<u32>,
    path: Option<String>,
    domain: Option<String>,
    http_only: Option<bool>,
    secure: Option<Secure>,
    same_site: Option<SameSite>,
}

/// `cookie.secure`: `true`, `false` or `"auto"` (Secure when the downstream
/// request is https).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secure {
    Always,
    Never,
    Auto,
}

impl<'de> Deserialize<'de> for Secure {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecureVisitor;
        impl Visitor<'_> for SecureVisitor {
            type Value = Secure;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Secure, E> {
                Ok(if v { Secure::Always } else { Secure::Never })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secure, E> {
                if v == "auto" {
                    Ok(Secure::Auto)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(SecureVisitor)
    }
}

/// `cookie.sameSite`, spelled as in the Set-Cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

// ---------------------------------------------------------------------------
// The validated runtime form.

#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub weight: u32,
    pub cluster: String,
}

#[derive(Debug, Clone)]
pub struct CookieSpec {
    pub name: String,
    /// Seconds; 0 means a session cookie (no Max-Age attribute).
    pub max_age: u32,
    pub path: String,
    pub domain: Option<String>,
    pub http_only: bool,
    pub secure: Secure,
    pub same_site: SameSite,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub pools: Vec<Pool>,
    pub cookie: CookieSpec,
    pub route_header: String,
    pub cluster_header: Option<String>,
    picker: WeightedPicker,
    /// Pool indexes sorted by name, for lookups of cookie values (bytes).
    by_name: Vec<usize>,
    set_cookie: SetCookieTemplate,
}

impl Config {
    /// Parses and validates the plugin configuration bytes as Envoy hands them
    /// over. Empty (or all-whitespace) input is refused: a filter with no pools
    /// has nothing to route to.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::new(
                "configuration",
                "is empty; sticky-split needs a JSON object with at least \"pools\"",
            ));
        }
        // serde's derived structs also accept arrays (fields by position);
        // a config written that way is a mistake, so objects are checked first.
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ConfigError::new("configuration", e.to_string()))?;
        require_objects(&value)?;
        let mut json = serde_json::Deserializer::from_slice(bytes);
        let raw: RawConfig = serde_path_to_error::deserialize(&mut json).map_err(|e| {
            let path = e.path().to_string();
            let reason = e.into_inner().to_string();
            ConfigError::new(field_of(&path, &reason), reason)
        })?;
        json.end()
            .map_err(|e| ConfigError::new("configuration", e.to_string()))?;
        Config::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.pools.is_empty() {
            return Err(ConfigError::new("pools", "must list at least one pool"));
        }
        if raw.pools.len() > MAX_POOLS {
            return Err(ConfigError::new(
                "pools",
                format!(
                    "has {} pools; at most {MAX_POOLS} are allowed",
                    raw.pools.len()
                ),
            ));
        }
        let mut pools = Vec::with_capacity(raw.pools.len());
        for (i, p) in raw.pools.into_iter().enumerate() {
            check_name(&format!("pools[{i}].name"), &p.name)?;
            let cluster = match p.cluster {
                Some(c) => {
                    if !token::is_visible_ascii(&c) || c.len() > MAX_CLUSTER_LEN {
                        return Err(ConfigError::new(
                            format!("pools[{i}].cluster"),
                            format!(
                                "{c:?} is not a valid cluster name (1 to {MAX_CLUSTER_LEN} visible ASCII characters, no spaces)"
                            ),
                        ));
                    }
                    c
                }
                None => p.name.clone(),
            };
            pools.push(Pool {
                name: p.name,
                weight: p.weight,
                cluster,
            });
        }

        let mut by_name: Vec<usize> = (0..pools.len()).collect();
        by_name.sort_by(|&a, &b| name_of(&pools, a).cmp(name_of(&pools, b)));
        for pair in by_name.windows(2) {
            if let [a, b] = *pair {
                if name_of(&pools, a) == name_of(&pools, b) {
                    let (first, second) = (a.min(b), a.max(b));
                    return Err(ConfigError::new(
                        format!("pools[{second}].name"),
                        format!(
                            "duplicate pool name {:?} (also pools[{first}].name)",
                            name_of(&pools, a)
                        ),
                    ));
                }
            }
        }

        let picker = WeightedPicker::new(pools.iter().map(|p| p.weight)).ok_or_else(|| {
            ConfigError::new(
                "pools",
                "total weight is 0; at least one pool needs a weight above 0",
            )
        })?;

        let cookie = validate_cookie(raw.cookie)?;
        let route_header = check_header_name(
            "routeHeader",
            raw.route_header.as_deref().unwrap_or(DEFAULT_ROUTE_HEADER),
        )?;
        let cluster_header = match raw.cluster_header {
            Some(h) => {
                let h = check_header_name("clusterHeader", &h)?;
                if h == route_header {
                    return Err(ConfigError::new(
                        "clusterHeader",
                        format!("must differ from routeHeader ({route_header:?})"),
                    ));
                }
                Some(h)
            }
            None => None,
        };
        let set_cookie = SetCookieTemplate::new(&cookie);
        Ok(Config {
            pools,
            cookie,
            route_header,
            cluster_header,
            picker,
            by_name,
            set_cookie,
        })
    }

    /// The pool whose name is exactly `name` (bytes from a cookie).
    pub fn pool_by_name(&self, name: &[u8]) -> Option<usize> {
        self.by_name
            .binary_search_by(|&i| name_of(&self.pools, i).as_bytes().cmp(name))
            .ok()
            .and_then(|slot| self.by_name.get(slot).copied())
    }

    /// Picks a pool in proportion to the weights from one uniform 64-bit draw.
    pub fn pick(&self, draw: u64) -> usize {
        self.picker.pick(draw)
    }

    pub fn pool(&self, index: usize) -> Option<&Pool> {
        self.pools.get(index)
    }

    /// The Set-Cookie header value that pins a user to `value`.
    pub fn set_cookie_header(&self, value: &str, https: bool) -> String {
        self.set_cookie.render(value, https)
    }
}

/// The places where the config holds objects must hold objects.
fn require_objects(value: &serde_json::Value) -> Result<(), ConfigError> {
    let not_object = |field: String| ConfigError::new(field, "must be a JSON object");
    let root = value
        .as_object()
        .ok_or_else(|| not_object("configuration".into()))?;
    if let Some(serde_json::Value::Array(pools)) = root.get("pools") {
        for (i, pool) in pools.iter().enumerate() {
            if !pool.is_object() {
                return Err(not_object(format!("pools[{i}]")));
            }
        }
    }
    match root.get("cookie") {
        Some(cookie) if !cookie.is_object() => Err(not_object("cookie".into())),
        _ => Ok(()),
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

fn name_of(pools: &[Pool], i: usize) -> &str {
    pools.get(i).map_or("", |p| p.name.as_str())
}

fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if !token::is_token(name) || name.len() > MAX_NAME_LEN {
        return Err(ConfigError::new(
            field,
            format!(
                "{name:?} is not a valid name (1 to {MAX_NAME_LEN} characters: letters, digits or !#$%&'*+-.^_`|~)"
            ),
        ));
    }
    Ok(())
}

/// Request headers a filter must not take over: framing, hop-by-hop, the
/// cookie headers themselves, and Envoy's own.
const RESERVED_HEADERS: &[&str] = &[
    "cookie",
    "set-cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
];

fn check_header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    if !token::is_token(name) || name.len() > MAX_NAME_LEN {
        return Err(ConfigError::new(
            field,
            format!("{name:?} is not a valid header name (1 to {MAX_NAME_LEN} token characters)"),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-envoy-") {
        return Err(ConfigError::new(
            field,
            format!(
                "{name:?} is reserved; choose a header of your own such as x-sticky-split-pool"
            ),
        ));
    }
    Ok(lower)
}

fn validate_cookie(raw: RawCookie) -> Result<CookieSpec, ConfigError> {
    let name = raw.name.unwrap_or_else(|| DEFAULT_COOKIE_NAME.to_string());
    if !token::is_token(&name) || name.len() > MAX_NAME_LEN {
        return Err(ConfigError::new(
            "cookie.name",
            format!("{name:?} is not a valid cookie name (1 to {MAX_NAME_LEN} token characters)"),
        ));
    }
    let path = raw.path.unwrap_or_else(|| "/".to_string());
    if !token::is_cookie_path(&path) || path.len() > 1024 {
        return Err(ConfigError::new(
            "cookie.path",
            format!(
                "{path:?} is not a valid cookie path (starts with /, visible ASCII, no ; or ,)"
            ),
        ));
    }
    if let Some(domain) = &raw.domain {
        if !token::is_cookie_domain(domain) {
            return Err(ConfigError::new(
                "cookie.domain",
                format!("{domain:?} is not a valid domain name"),
            ));
        }
    }
    let secure = raw.secure.unwrap_or(Secure::Auto);
    let same_site = raw.same_site.unwrap_or(SameSite::Lax);
    if same_site == SameSite::None && secure == Secure::Never {
        return Err(ConfigError::new(
            "cookie.sameSite",
            "None requires the Secure attribute (browsers drop SameSite=None cookies without it); set cookie.secure to true or \"auto\"",
        ));
    }
    Ok(CookieSpec {
        name,
        max_age: raw.max_age.unwrap_or(DEFAULT_MAX_AGE),
        path,
        domain: raw.domain,
        http_only: raw.http_only.unwrap_or(true),
        secure,
        same_site,
    })
}
