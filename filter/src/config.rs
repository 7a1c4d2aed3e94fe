//! Plugin configuration: the JSON users write (camelCase, unknown fields
//! refused) and its validated runtime form.
//!
//! Parsing is two steps: the raw types are read from the JSON tree with
//! shapes and types checked (`json`), then [`Config::from_json`] checks
//! meaning (tokens, duplicates, weights, combinations) and precomputes what
//! the request path needs, so per-request work is lookups only.

use std::fmt;

use crate::affinity::{self, Codec, Payload};
use crate::cookie::SetCookieTemplate;
use crate::hash::Rendezvous;
use crate::json::{self, Value};
use crate::pick::WeightedPicker;
use crate::rules::{self, RawRule, Rule};
use crate::token;

/// Defaults, documented in the README's field table.
pub const DEFAULT_COOKIE_NAME: &str = "sticky-split";
pub const DEFAULT_MAX_AGE: u32 = 2_592_000;
pub const DEFAULT_ROUTE_HEADER: &str = "x-sticky-split-pool";
pub const MAX_POOLS: usize = 1024;
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_CLUSTER_LEN: usize = 255;
pub const MAX_RULES: usize = 1024;
/// Shortest signing key accepted: 128 bits.
pub const MIN_KEY_BYTES: usize = 16;

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

// ---------------------------------------------------------------------------
// What users write.

#[derive(Debug)]
struct RawConfig {
    pools: Vec<RawPool>,
    cookie: RawCookie,
    route_header: Option<String>,
    cluster_header: Option<String>,
    rules: Vec<RawRule>,
    hash_on: Option<RawHashOn>,
    affinity: Option<Affinity>,
    generation: Option<String>,
    debug_header: Option<String>,
}

impl RawConfig {
    fn read(value: &Value) -> Result<Self, ConfigError> {
        let o = json::object(
            value,
            "",
            &[
                "pools",
                "cookie",
                "routeHeader",
                "clusterHeader",
                "rules",
                "hashOn",
                "affinity",
                "generation",
                "debugHeader",
            ],
        )?;
        let pools = o
            .required("pools", o.array("pools")?)?
            .iter()
            .enumerate()
            .map(|(i, p)| RawPool::read(p, &format!("pools[{i}]")))
            .collect::<Result<_, _>>()?;
        let cookie = match o.get("cookie") {
            Some(c) => RawCookie::read(c, "cookie")?,
            None => RawCookie::default(),
        };
        let rules = o
            .array("rules")?
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, r)| RawRule::read(r, &format!("rules[{i}]")))
            .collect::<Result<_, _>>()?;
        let hash_on = match o.get("hashOn") {
            Some(h) => {
                let h = json::object(h, "hashOn", &["header", "cookie"])?;
                Some(RawHashOn {
                    header: h.string("header")?,
                    cookie: h.string("cookie")?,
                })
            }
            None => None,
        };
        let affinity = o.variant("affinity", &["pool", "ramp"])?.map(|v| match v {
            "ramp" => Affinity::Ramp,
            _ => Affinity::Pool,
        });
        Ok(RawConfig {
            pools,
            cookie,
            route_header: o.string("routeHeader")?,
            cluster_header: o.string("clusterHeader")?,
            rules,
            hash_on,
            affinity,
            generation: o.string("generation")?,
            debug_header: o.string("debugHeader")?,
        })
    }
}

#[derive(Debug)]
struct RawHashOn {
    header: Option<String>,
    cookie: Option<String>,
}

/// Where `hashOn` takes the user key from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// A request header (lowercase name); repeated values are joined with `,`.
    Header(String),
    /// A cookie's first value.
    Cookie(String),
}

/// `affinity`: what the cookie holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Affinity {
    /// The pool's name: the user is pinned until the cookie expires.
    #[default]
    Pool,
    /// A random per-user key; the pool is recomputed from it by weighted
    /// rendezvous hashing, so weight changes move only the needed users.
    Ramp,
}

#[derive(Debug)]
struct RawPool {
    name: String,
    weight: u32,
    cluster: Option<String>,
    evict: bool,
}

impl RawPool {
    fn read(value: &Value, at: &str) -> Result<Self, ConfigError> {
        let o = json::object(value, at, &["name", "weight", "cluster", "evict"])?;
        Ok(RawPool {
            name: o.required("name", o.string("name")?)?,
            weight: o.required("weight", o.u32("weight")?)?,
            cluster: o.string("cluster")?,
            evict: o.bool("evict")?.unwrap_or(false),
        })
    }
}

#[derive(Debug, Default)]
struct RawCookie {
    name: Option<String>,
    max_age: Option<u32>,
    path: Option<String>,
    domain: Option<String>,
    http_only: Option<bool>,
    secure: Option<Secure>,
    same_site: Option<SameSite>,
    signing_key_env: Option<String>,
}

impl RawCookie {
    fn read(value: &Value, at: &str) -> Result<Self, ConfigError> {
        let o = json::object(
            value,
            at,
            &[
                "name",
                "maxAge",
                "path",
                "domain",
                "httpOnly",
                "secure",
                "sameSite",
                "signingKeyEnv",
            ],
        )?;
        let secure = match o.get("secure") {
            None => None,
            Some(Value::Bool(true)) => Some(Secure::Always),
            Some(Value::Bool(false)) => Some(Secure::Never),
            Some(Value::String(s)) if s == "auto" => Some(Secure::Auto),
            Some(v) => {
                let kind = if matches!(v, Value::String(_)) {
                    "invalid value"
                } else {
                    "invalid type"
                };
                return Err(ConfigError::new(
                    o.field("secure"),
                    format!("{kind}: {}, expected true, false or \"auto\"", v.describe()),
                ));
            }
        };
        let same_site = o
            .variant("sameSite", &["Strict", "Lax", "None"])?
            .map(|v| match v {
                "Strict" => SameSite::Strict,
                "None" => SameSite::None,
                _ => SameSite::Lax,
            });
        Ok(RawCookie {
            name: o.string("name")?,
            max_age: o.u32("maxAge")?,
            path: o.string("path")?,
            domain: o.string("domain")?,
            http_only: o.bool("httpOnly")?,
            secure,
            same_site,
            signing_key_env: o.string("signingKeyEnv")?,
        })
    }
}

/// `cookie.secure`: `true`, `false` or `"auto"` (Secure when the downstream
/// request is https).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secure {
    Always,
    Never,
    Auto,
}

/// `cookie.sameSite`, spelled as in the Set-Cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Pinned users are moved out (rollback); requires weight 0.
    pub evict: bool,
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
    /// The environment variable holding the signing key, if signing is on.
    pub signing_key_env: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub pools: Vec<Pool>,
    pub cookie: CookieSpec,
    pub route_header: String,
    pub cluster_header: Option<String>,
    pub rules: Vec<Rule>,
    pub hash_on: Option<HashOn>,
    pub affinity: Affinity,
    pub generation: Option<String>,
    /// Response header naming the pool and reason, when set.
    pub debug_header: Option<String>,
    picker: WeightedPicker,
    rendezvous: Rendezvous,
    codec: Codec,
    /// Pool indexes sorted by name, for lookups of cookie values (bytes).
    by_name: Vec<usize>,
    set_cookie: SetCookieTemplate,
    reads: Reads,
}

/// What the decision reads from a request, worked out once per config so
/// the glue fetches only that from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// Request headers other than the path and cookies (header rules, a
    /// `hashOn` header): the whole header map, since a header may repeat.
    pub header_map: bool,
    /// `:path` (path and query rules).
    pub path: bool,
    /// Cookies that rules and `hashOn` read, the affinity cookie included
    /// when a rule names it (its own step is judged by the decision's reason).
    pub cookies: Vec<String>,
}

impl Config {
    /// Parses and validates the plugin configuration bytes as Envoy hands them
    /// over, reading the signing key (if any) from the process environment
    /// (inside Envoy: the VM's `environment_variables`). Empty (or
    /// all-whitespace) input is refused: a filter with no pools has nothing to
    /// route to.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        Config::from_json_with_env(bytes, |name| {
            std::env::var_os(name).map(|v| v.into_encoded_bytes())
        })
    }

    /// As [`Config::from_json`], with the environment given as a function.
    pub fn from_json_with_env(
        bytes: &[u8],
        env: impl Fn(&str) -> Option<Vec<u8>>,
    ) -> Result<Config, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::new(
                "configuration",
                "is empty; sticky-split needs a JSON object with at least \"pools\"",
            ));
        }
        let value = json::parse(bytes).map_err(|e| ConfigError::new("configuration", e))?;
        let raw = RawConfig::read(&value)?;
        Config::validate(raw, env)
    }

    fn validate(
        raw: RawConfig,
        env: impl Fn(&str) -> Option<Vec<u8>>,
    ) -> Result<Config, ConfigError> {
        if raw.pools.is_empty() {
            return Err(ConfigError::new("pools", "must list at least one pool"));
        }
        check_count("pools", raw.pools.len(), MAX_POOLS)?;
        let mut pools = Vec::with_capacity(raw.pools.len());
        let mut by_name: Vec<usize> = Vec::with_capacity(raw.pools.len());
        for (i, p) in raw.pools.into_iter().enumerate() {
            check_token(&format!("pools[{i}].name"), &p.name, "name")?;
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
            if p.evict && p.weight > 0 {
                return Err(ConfigError::new(
                    format!("pools[{i}].evict"),
                    format!(
                        "an evicted pool must have weight 0 (it has {}): its users are moved to the other pools",
                        p.weight
                    ),
                ));
            }
            // The name index is built by binary insertion, which finds
            // duplicates on the way (and keeps a sort routine out of the module).
            match by_name.binary_search_by(|&j| name_of(&pools, j).cmp(p.name.as_str())) {
                Ok(slot) => {
                    let first = by_name.get(slot).copied().unwrap_or_default();
                    return Err(ConfigError::new(
                        format!("pools[{i}].name"),
                        format!(
                            "duplicate pool name {:?} (also pools[{first}].name)",
                            p.name
                        ),
                    ));
                }
                Err(slot) => by_name.insert(slot, pools.len()),
            }
            pools.push(Pool {
                name: p.name,
                weight: p.weight,
                cluster,
                evict: p.evict,
            });
        }

        let picker = WeightedPicker::new(pools.iter().map(|p| p.weight)).ok_or_else(|| {
            ConfigError::new(
                "pools",
                "total weight is 0; at least one pool needs a weight above 0",
            )
        })?;

        let rendezvous = Rendezvous::new(pools.iter().map(|p| (p.name.as_str(), p.weight)))
            .ok_or_else(|| ConfigError::new("pools", "total weight is 0"))?;

        let cookie = validate_cookie(raw.cookie)?;
        let signing_key = match &cookie.signing_key_env {
            Some(var) => Some(signing_key(var, &env)?),
            None => None,
        };
        if let Some(g) = &raw.generation {
            if !affinity::is_generation(g) {
                return Err(ConfigError::new(
                    "generation",
                    format!("{g:?} is not valid (1 to 32 characters: letters, digits, - or _)"),
                ));
            }
        }
        let codec = Codec::new(&cookie.name, raw.generation.clone(), signing_key.as_deref());
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
        check_count("rules", raw.rules.len(), MAX_RULES)?;
        let lookup = |name: &str| lookup_name(&pools, &by_name, name.as_bytes());
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| rules::compile(i, r, lookup))
            .collect::<Result<Vec<_>, _>>()?;
        let hash_on = match raw.hash_on {
            None => None,
            Some(RawHashOn {
                header: Some(h),
                cookie: None,
            }) => Some(HashOn::Header(
                check_token("hashOn.header", &h, "name")?.to_ascii_lowercase(),
            )),
            Some(RawHashOn {
                header: None,
                cookie: Some(c),
            }) => Some(HashOn::Cookie(
                check_token("hashOn.cookie", &c, "name")?.to_string(),
            )),
            Some(_) => {
                return Err(ConfigError::new(
                    "hashOn",
                    "needs exactly one of header, cookie",
                ))
            }
        };
        let debug_header = match raw.debug_header {
            Some(h) => {
                let h = check_header_name("debugHeader", &h)?;
                if h == route_header || cluster_header.as_deref() == Some(h.as_str()) {
                    return Err(ConfigError::new(
                        "debugHeader",
                        "must differ from routeHeader and clusterHeader",
                    ));
                }
                Some(h)
            }
            None => None,
        };
        let set_cookie = SetCookieTemplate::new(&cookie);
        let cookies: Vec<String> = rules
            .iter()
            .flat_map(|r| r.cookie_names().map(str::to_string))
            .chain(match &hash_on {
                Some(HashOn::Cookie(c)) => Some(c.clone()),
                _ => None,
            })
            .fold(Vec::new(), |mut names, name| {
                if !names.contains(&name) {
                    names.push(name);
                }
                names
            });
        let reads = Reads {
            header_map: rules.iter().any(Rule::reads_headers)
                || matches!(hash_on, Some(HashOn::Header(_))),
            path: rules.iter().any(Rule::reads_path),
            cookies,
        };
        Ok(Config {
            debug_header,
            pools,
            cookie,
            route_header,
            cluster_header,
            rules,
            hash_on,
            affinity: raw.affinity.unwrap_or_default(),
            generation: raw.generation,
            picker,
            rendezvous,
            codec,
            by_name,
            set_cookie,
            reads,
        })
    }

    /// What the decision reads from a request.
    pub fn reads(&self) -> &Reads {
        &self.reads
    }

    /// The pool whose name is exactly `name` (bytes from a cookie).
    pub fn pool_by_name(&self, name: &[u8]) -> Option<usize> {
        lookup_name(&self.pools, &self.by_name, name)
    }

    /// The pool for a user key, by weighted rendezvous hashing.
    pub fn pool_for_key(&self, key_hash: u64) -> usize {
        self.rendezvous.pick(key_hash)
    }

    /// Reads an affinity cookie value.
    pub fn decode_cookie(&self, value: &[u8]) -> affinity::Parsed {
        self.codec.decode(value, |name| self.pool_by_name(name))
    }

    /// The affinity cookie value for a payload.
    pub fn encode_cookie(&self, payload: Payload) -> Option<String> {
        self.codec
            .encode(payload, |i| self.pool(i).map(|p| p.name.as_str()))
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

fn name_of(pools: &[Pool], i: usize) -> &str {
    pools.get(i).map_or("", |p| p.name.as_str())
}

fn lookup_name(pools: &[Pool], by_name: &[usize], name: &[u8]) -> Option<usize> {
    by_name
        .binary_search_by(|&i| name_of(pools, i).as_bytes().cmp(name))
        .ok()
        .and_then(|slot| by_name.get(slot).copied())
}

/// Reads the signing key from the environment. The key itself is never put
/// in an error or a log line.
fn signing_key(var: &str, env: &impl Fn(&str) -> Option<Vec<u8>>) -> Result<Vec<u8>, ConfigError> {
    let field = "cookie.signingKeyEnv";
    if var.is_empty() || var.contains('=') || var.contains('\0') {
        return Err(ConfigError::new(
            field,
            format!("{var:?} is not a valid environment variable name"),
        ));
    }
    match env(var) {
        None => Err(ConfigError::new(
            field,
            format!(
                "environment variable {var} is not set in the VM (Envoy: vm_config.environment_variables; Istio: WasmPlugin spec.vmConfig.env)"
            ),
        )),
        Some(key) if key.is_empty() => Err(ConfigError::new(field, format!("environment variable {var} is empty"))),
        Some(key) if key.len() < MIN_KEY_BYTES => Err(ConfigError::new(
            field,
            format!("the key in {var} is {} bytes; at least {MIN_KEY_BYTES} are required", key.len()),
        )),
        Some(key) => Ok(key),
    }
}

/// A token of 1 to MAX_NAME_LEN characters: pool names, cookie names,
/// header names, hashOn sources.
fn check_token<'a>(field: &str, value: &'a str, what: &str) -> Result<&'a str, ConfigError> {
    if !token::is_token(value) || value.len() > MAX_NAME_LEN {
        return Err(ConfigError::new(
            field,
            format!(
                "{value:?} is not a valid {what} (1 to {MAX_NAME_LEN} characters: letters, digits or !#$%&'*+-.^_`|~)"
            ),
        ));
    }
    Ok(value)
}

/// At most `max` entries in the list at `field`.
fn check_count(field: &str, len: usize, max: usize) -> Result<(), ConfigError> {
    if len > max {
        return Err(ConfigError::new(
            field,
            format!("has {len} entries; at most {max} are allowed"),
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
    check_token(field, name, "header name")?;
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
    check_token("cookie.name", &name, "cookie name")?;
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
        signing_key_env: raw.signing_key_env,
    })
}
