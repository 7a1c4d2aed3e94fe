//! From the raw types to the runtime [`Config`]: one step per concern, each
//! naming the field it refuses and why.

use super::check::{check_count, check_token};
use super::cookie_fields::{cookie_spec, generation, previous_signing_keys, signing_key, timeouts};
use super::header_names::{headers, HeaderNames};
use super::raw::{RawConfig, RawFailover, RawHashOn, RawPool, RawRule};
use super::{
    compile_rules, Config, ConfigError, Failover, HashOn, Pool, RequestNeeds, DEFAULT_EJECT_AFTER,
    DEFAULT_EJECT_SECONDS, MAX_CLUSTER_LEN, MAX_POOLS, MAX_RULES, MAX_SECONDS,
};
use crate::choice::{Rendezvous, WeightedPicker};
use crate::cookie::{Codec, SetCookieTemplate};
use crate::rules::Rule;
use crate::token;

pub(super) fn validate(
    raw: RawConfig,
    env: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Config, ConfigError> {
    let (pools, by_name) = pools(raw.pools)?;
    let (picker, rendezvous) = weights(&pools)?;
    let key_env = raw.cookie.signing_key_env.clone();
    let previous_envs = raw.cookie.previous_signing_key_envs.clone();
    let timeouts = timeouts(&raw.cookie)?;
    let cookie = cookie_spec(raw.cookie)?;
    let signing_key = key_env
        .as_deref()
        .map(|var| signing_key("cookie.signingKeyEnv", var, &env))
        .transpose()?;
    let previous_keys = previous_signing_keys(previous_envs, key_env.as_deref(), &env)?;
    let generation = generation(raw.generation)?;
    let codec = Codec::new(&cookie.name, generation.clone(), signing_key.as_deref())
        .with_previous_keys(&previous_keys);
    let codec = if timeouts.is_set() {
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
    let rules = override_rules(raw.rules, |name| {
        super::lookup_name(&pools, &by_name, name.as_bytes())
    })?;
    let pools = restrict_to_rules(pools, &rules, signing_key.is_some())?;
    let hash_on = raw.hash_on.map(hash_on).transpose()?;
    let needs = RequestNeeds::of(&rules, hash_on.as_ref(), session_header.as_ref(), timeouts);
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
        timeouts,
        session_header,
        clear_route_cache: raw.clear_route_cache.unwrap_or(false),
        response_counters: raw.response_counters.unwrap_or(true),
        export_decision: raw.export_decision.unwrap_or(false),
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
        check_stat_value(&format!("pools[{i}].name"), &p.name)?;
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
            rules_only: false,
        });
    }
    Ok((pools, by_name))
}

/// Marks the pools only rules may send users to: weight 0, a rule's
/// target, and values unsigned (signed values of such a pool can only be
/// the gateway's own, from a sticky rule or from when the pool had weight).
/// A sticky rule to such a pool would pin users with a value anyone could
/// write, so without a signing key it is refused.
fn restrict_to_rules(
    mut pools: Vec<Pool>,
    rules: &[Rule],
    signed: bool,
) -> Result<Vec<Pool>, ConfigError> {
    if signed {
        return Ok(pools);
    }
    for (i, rule) in rules.iter().enumerate() {
        let Some(pool) = pools.get_mut(rule.pool).filter(|p| p.weight == 0) else {
            continue;
        };
        if rule.sticky {
            return Err(ConfigError::new(
                format!("rules[{i}].sticky"),
                format!(
                    "pins users to pool {:?}, which has weight 0: without cookie.signingKeyEnv any client could pin itself there by writing the pool's name into the cookie; set cookie.signingKeyEnv, or drop sticky",
                    pool.name
                ),
            ));
        }
        pool.rules_only = true;
    }
    Ok(pools)
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

fn override_rules(
    raw: Vec<RawRule>,
    pool_index: impl Fn(&str) -> Option<usize> + Copy,
) -> Result<Vec<Rule>, ConfigError> {
    check_count("rules", raw.len(), MAX_RULES)?;
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| compile_rules::compile(i, r, pool_index))
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

/// Stats tag extractors that Istio's bootstrap runs on every stat name (not
/// anchored to a stat prefix), by what in a pool name would set them off: the
/// counters carry the pool name, and such a name would gain a stray label and
/// lose part of itself.
const MISREAD_BY: &[(&str, &str)] = &[
    ("cache.", "cache\\.(.+?)\\."),
    ("component.", "component\\.(.+?)\\."),
    ("wasm_filter.", "wasm_filter\\.(.+?)\\."),
    ("tag.", "tag\\.(.+?);\\."),
    ("rbac.allowed", "rbac(\\.(allowed|denied))"),
    ("rbac.denied", "rbac(\\.(allowed|denied))"),
    (".istio_dry_run_allow_", "\\.istio_dry_run_(allow|deny)_"),
    (".istio_dry_run_deny_", "\\.istio_dry_run_(allow|deny)_"),
    (".shadow_allowed", "\\.shadow_(allowed|denied)"),
    (".shadow_denied", "\\.shadow_(allowed|denied)"),
];

/// A pool name that Istio's stats tag extractors would misread in the
/// counters' names is refused, naming the extractor.
fn check_stat_value(field: &str, name: &str) -> Result<(), ConfigError> {
    let lower = name.to_ascii_lowercase();
    let hit = MISREAD_BY
        .iter()
        .find(|(part, _)| lower.contains(part))
        .map(|&(part, regex)| (part.to_string(), regex));
    match hit {
        Some((part, regex)) => Err(ConfigError::new(
            field,
            format!(
                "{name:?} contains {part:?}, which Istio's stats tag extractor {regex} would misread in the counters' names; choose a name without it"
            ),
        )),
        None => Ok(()),
    }
}
