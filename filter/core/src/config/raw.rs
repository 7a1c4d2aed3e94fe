//! What users write: serde types for the plugin configuration, camelCase,
//! unknown fields refused. Shapes and types only; meaning is checked in
//! `validate`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::Affinity;
use crate::cookie::{SameSite, Secure};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    pub pools: Vec<RawPool>,
    #[serde(default)]
    pub cookie: RawCookie,
    pub route_header: Option<String>,
    pub cluster_header: Option<String>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    pub hash_on: Option<RawHashOn>,
    pub affinity: Option<Affinity>,
    pub generation: Option<String>,
    pub debug_header: Option<String>,
    pub failover: Option<RawFailover>,
    pub session_header: Option<String>,
    pub clear_route_cache: Option<bool>,
    pub response_counters: Option<bool>,
    pub export_decision: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFailover {
    pub enabled: Option<bool>,
    pub eject_after: Option<u32>,
    pub eject_seconds: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPool {
    pub name: String,
    pub weight: u32,
    pub cluster: Option<String>,
    #[serde(default)]
    pub evict: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCookie {
    pub name: Option<String>,
    pub max_age: Option<u32>,
    pub path: Option<String>,
    pub domain: Option<String>,
    pub http_only: Option<bool>,
    pub secure: Option<RawSecure>,
    pub same_site: Option<RawSameSite>,
    pub signing_key_env: Option<String>,
    pub previous_signing_key_envs: Option<Vec<String>>,
    pub absolute_timeout: Option<u32>,
    pub idle_timeout: Option<u32>,
    pub partitioned: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHashOn {
    pub header: Option<String>,
    pub cookie: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRule {
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    pub pool: String,
    #[serde(default)]
    pub sticky: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMatch {
    #[serde(default)]
    pub headers: Vec<RawStringMatch>,
    #[serde(default)]
    pub query: Vec<RawStringMatch>,
    #[serde(default)]
    pub cookies: Vec<RawStringMatch>,
    pub path: Option<RawStringMatch>,
}

/// One condition. `name` is required for headers, query and cookies, and
/// refused for the path; exactly one way of matching is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStringMatch {
    pub name: Option<String>,
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
    pub present: Option<bool>,
}

/// `cookie.secure` as written: `true`, `false` or `"auto"`.
#[derive(Debug, Clone, Copy)]
pub struct RawSecure(pub Secure);

impl<'de> Deserialize<'de> for RawSecure {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecureVisitor;
        impl Visitor<'_> for SecureVisitor {
            type Value = RawSecure;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawSecure, E> {
                Ok(RawSecure(if v { Secure::Always } else { Secure::Never }))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSecure, E> {
                match v {
                    "auto" => Ok(RawSecure(Secure::Auto)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(SecureVisitor)
    }
}

/// `cookie.sameSite` as written, exactly so spelled.
#[derive(Debug, Clone, Copy, Deserialize)]
pub enum RawSameSite {
    Strict,
    Lax,
    None,
}

impl From<RawSameSite> for SameSite {
    fn from(raw: RawSameSite) -> SameSite {
        match raw {
            RawSameSite::Strict => SameSite::Strict,
            RawSameSite::Lax => SameSite::Lax,
            RawSameSite::None => SameSite::None,
        }
    }
}
