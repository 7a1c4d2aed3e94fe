//! From the raw types to the runtime [`Config`]: one step per concern, each
//! naming the field it refuses and why.

use super::raw::{RawConfig, RawCookie, RawFailover, RawHashOn, RawPool, RawRule};
use super::{
    rules, Config, ConfigError, Failover, HashOn, Lifetime, Pool, RequestNeeds,
    DEFAULT_COOKIE_NAME, DEFAULT_EJECT_AFTER, DEFAULT_EJECT_SECONDS, DEFAULT_MAX_AGE,
    DEFAULT_ROUTE_HEADER, MAX_CLUSTER_LEN, MAX_NAME_LEN, MAX_POOLS, MAX_RULES, MAX_SECONDS,
    MIN_KEY_BYTES,
};
use crate::choice::{Rendezvous, WeightedPicker};
use crate::cookie::{self, Codec, CookieSpec, SameSite, Secure, SetCookieTemplate};
use crate::rules::Rule;
use crate::token;

pub(super) fn validate(
    raw: RawConfig,
    env: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Config, ConfigError> {
    let (pools, by_name) = pools(raw.pools)?;
    let (picker, rendezvous) = weights(&pools)?;
    let key_env = raw.cookie.signing_key_env.clone();
    let lifetime = lifetime(&raw.cookie)?;
    let cookie = cookie_spec(raw.cookie)?;
    let signing_key = key_env.map(|var| signing_key(&var, &env)).transpose()?;
    let generation = generation(raw.generation)?;
    let codec = Codec::new(&cookie.name, generation.clone(), signing_key.as_deref());
    let codec = if lifetime.is_set() {
        codec.stamped()
    } else {
        codec
    };
    let HeaderNames {
        route: route_header,
        cluster: cluster_header,
        debug: debug_header,
        session: session_header,
    } = headers(
        raw.route_header,
        raw.cluster_header,
        raw.debug_header,
        raw.session_header,
    )?;
    let rules = rules(raw.rules, |name| {
        super::lookup_name(&pools, &by_name, name.as_bytes())
    })?;
    let hash_on = raw.hash_on.map(hash_on).transpose()?;
    let needs = RequestNeeds::of(&rules, hash_on.as_ref(), session_header.as_ref(), lifetime);
    let failover = failover(raw.failover)?;
    Ok(Config {
        set_cookie: SetCookieTemplate::new(&cookie),
        pools,
        cookie,
        route_header,
        cluster_header,
        rules,
        hash_on,
        affinity: raw.affinity.unwrap_or_default(),
        generation,
        debug_header,
        failover,
        lifetime,
        session_header,
        clear_route_cache: raw.clear_route_cache.unwrap_or(false),
        response_counters: raw.response_counters.unwrap_or(true),
        picker,
        rendezvous,
        codec,
        by_name,
        needs,
    })
}

/// The pools in order, and their indexes sorted by name. The name index is
/// built by binary insertion, which finds duplicates on the way.
fn pools(raw: Vec<RawPool>) -> Result<(Vec<Pool>, Vec<usize>), ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new("pools", "must list at least one pool"));
    }
    check_count("pools", raw.len(), MAX_POOLS)?;
    let mut pools: Vec<Pool> = Vec::with_capacity(raw.len());
    let mut by_name: Vec<usize> = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        check_token(&format!("pools[{i}].name"), &p.name, "name")?;
        let cluster = match p.cluster {
            Some(c) if token::is_visible_ascii(&c) && c.len() <= MAX_CLUSTER_LEN => c,
            Some(c) => {
                return Err(ConfigError::new(
                    format!("pools[{i}].cluster"),
                    format!(
                        "{c:?} is not a valid cluster name (1 to {MAX_CLUSTER_LEN} visible ASCII characters, no spaces)"
                    ),
                ))
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
        match by_name.binary_search_by(|&j| super::name_of(&pools, j).cmp(p.name.as_str())) {
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
    Ok((pools, by_name))
}

/// The weighted picker and the rendezvous ring; both need a weight above 0.
fn weights(pools: &[Pool]) -> Result<(WeightedPicker, Rendezvous), ConfigError> {
    let picker = WeightedPicker::new(pools.iter().map(|p| p.weight));
    let rendezvous = Rendezvous::new(pools.iter().map(|p| (p.name.as_str(), p.weight)));
    match (picker, rendezvous) {
        (Some(picker), Some(rendezvous)) => Ok((picker, rendezvous)),
        _ => Err(ConfigError::new(
            "pools",
            "total weight is 0; at least one pool needs a weight above 0",
        )),
    }
}

fn cookie_spec(raw: RawCookie) -> Result<CookieSpec, ConfigError> {
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
    if let Some(domain) = raw.domain.as_ref().filter(|d| !token::is_cookie_domain(d)) {
        return Err(ConfigError::new(
            "cookie.domain",
            format!("{domain:?} is not a valid domain name"),
        ));
    }
    let secure = raw.secure.map_or(Secure::Auto, |s| s.0);
    let same_site = raw.same_site.map_or(SameSite::Lax, SameSite::from);
    if same_site == SameSite::None && secure == Secure::Never {
        return Err(ConfigError::new(
            "cookie.sameSite",
            "None requires the Secure attribute (browsers drop SameSite=None cookies without it); set cookie.secure to true or \"auto\"",
        ));
    }
    let partitioned = raw.partitioned.unwrap_or(false);
    if partitioned && secure == Secure::Never {
        return Err(ConfigError::new(
            "cookie.partitioned",
            "requires the Secure attribute (browsers drop Partitioned cookies without it); set cookie.secure to true or \"auto\"",
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
        partitioned,
    })
}

/// `cookie.absoluteTimeout` and `cookie.idleTimeout`: 1 second to a year
/// (idle at least 2, so that renewal after half of it is a whole second).
fn lifetime(raw: &RawCookie) -> Result<Lifetime, ConfigError> {
    let check = |field: &str, value: Option<u32>, min: u32| match value {
        Some(v) if v < min || v > MAX_SECONDS => Err(ConfigError::new(
            field,
            format!("{v} is out of range ({min} to {MAX_SECONDS} seconds)"),
        )),
        v => Ok(v),
    };
    Ok(Lifetime {
        absolute: check("cookie.absoluteTimeout", raw.absolute_timeout, 1)?,
        idle: check("cookie.idleTimeout", raw.idle_timeout, 2)?,
    })
}

/// `failover`: on unless `enabled` is false; ejection after 1 or more
/// failures, for 1 second to a year.
fn failover(raw: Option<RawFailover>) -> Result<Failover, ConfigError> {
    let raw = raw.unwrap_or(RawFailover {
        enabled: None,
        eject_after: None,
        eject_seconds: None,
    });
    let eject_after = raw.eject_after.unwrap_or(DEFAULT_EJECT_AFTER);
    if eject_after == 0 {
        return Err(ConfigError::new(
            "failover.ejectAfter",
            "must be at least 1 (consecutive gateway-level failures that eject a pool)",
        ));
    }
    let eject_seconds = raw.eject_seconds.unwrap_or(DEFAULT_EJECT_SECONDS);
    if eject_seconds == 0 || eject_seconds > MAX_SECONDS {
        return Err(ConfigError::new(
            "failover.ejectSeconds",
            format!("{eject_seconds} is out of range (1 to {MAX_SECONDS} seconds)"),
        ));
    }
    Ok(Failover {
        enabled: raw.enabled.unwrap_or(true),
        eject_after,
        eject_seconds,
    })
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

fn generation(raw: Option<String>) -> Result<Option<String>, ConfigError> {
    match raw {
        Some(g) if !cookie::is_generation(&g) => Err(ConfigError::new(
            "generation",
            format!("{g:?} is not valid (1 to 32 characters: letters, digits, - or _)"),
        )),
        g => Ok(g),
    }
}

/// The headers the filter writes or reads by name, validated.
struct HeaderNames {
    route: String,
    cluster: Option<String>,
    debug: Option<String>,
    session: Option<String>,
}

/// routeHeader, clusterHeader, debugHeader and sessionHeader: lowercase,
/// not reserved, and all different.
fn headers(
    route: Option<String>,
    cluster: Option<String>,
    debug: Option<String>,
    session: Option<String>,
) -> Result<HeaderNames, ConfigError> {
    let route = check_header_name(
        "routeHeader",
        route.as_deref().unwrap_or(DEFAULT_ROUTE_HEADER),
    )?;
    let cluster = cluster
        .map(|h| check_header_name("clusterHeader", &h))
        .transpose()?;
    if cluster.as_deref() == Some(route.as_str()) {
        return Err(ConfigError::new(
            "clusterHeader",
            format!("must differ from routeHeader ({route:?})"),
        ));
    }
    let debug = debug
        .map(|h| check_header_name("debugHeader", &h))
        .transpose()?;
    if let Some(d) = &debug {
        if *d == route || cluster.as_ref() == Some(d) {
            return Err(ConfigError::new(
                "debugHeader",
                "must differ from routeHeader and clusterHeader",
            ));
        }
    }
    let session = session
        .map(|h| check_header_name("sessionHeader", &h))
        .transpose()?;
    if let Some(s) = &session {
        if *s == route || cluster.as_ref() == Some(s) || debug.as_ref() == Some(s) {
            return Err(ConfigError::new(
                "sessionHeader",
                "must differ from routeHeader, clusterHeader and debugHeader",
            ));
        }
    }
    Ok(HeaderNames {
        route,
        cluster,
        debug,
        session,
    })
}

fn rules(
    raw: Vec<RawRule>,
    pool_index: impl Fn(&str) -> Option<usize> + Copy,
) -> Result<Vec<Rule>, ConfigError> {
    check_count("rules", raw.len(), MAX_RULES)?;
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| rules::compile(i, r, pool_index))
        .collect()
}

fn hash_on(raw: RawHashOn) -> Result<HashOn, ConfigError> {
    match raw {
        RawHashOn {
            header: Some(h),
            cookie: None,
        } => Ok(HashOn::Header(
            check_token("hashOn.header", &h, "name")?.to_ascii_lowercase(),
        )),
        RawHashOn {
            header: None,
            cookie: Some(c),
        } => Ok(HashOn::Cookie(
            check_token("hashOn.cookie", &c, "name")?.to_string(),
        )),
        _ => Err(ConfigError::new(
            "hashOn",
            "needs exactly one of header, cookie",
        )),
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
