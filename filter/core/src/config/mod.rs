//! Plugin configuration: the JSON users write and its validated runtime form.
//!
//! Two steps: serde reads the raw types (`raw`, shapes and types, unknown
//! fields refused; errors mapped to field paths in `error`), then `validate`
//! checks meaning (tokens, duplicates, weights, combinations) and
//! precomputes what the request path needs, so per-request work is lookups.

mod check;
mod compile_rules;
mod cookie_fields;
mod error;
mod header_names;
mod parse;
mod raw;
mod validate;

use serde::Deserialize;

use crate::choice::{Rendezvous, WeightedPicker};
use crate::cookie::{Codec, Payload, SetCookieTemplate, Stamp, Verdict};
pub use crate::cookie::{CookieSpec, SameSite, Secure};
use crate::health::Health;
use crate::rules::Rule;
pub use error::ConfigError;
pub use header_names::{RESERVED_ANYWHERE, RESERVED_IN_REQUESTS, RESERVED_IN_RESPONSES};

/// Defaults, documented in docs/configuration.md.
pub const DEFAULT_COOKIE_NAME: &str = "sticky-split";
pub const DEFAULT_MAX_AGE: u32 = 2_592_000;
pub const DEFAULT_ROUTE_HEADER: &str = "x-sticky-split-pool";
pub const MAX_POOLS: usize = 1024;
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_CLUSTER_LEN: usize = 255;
pub const MAX_RULES: usize = 1024;
/// Shortest signing key accepted: 128 bits.
pub const MIN_KEY_BYTES: usize = 16;
/// `failover` defaults: consecutive gateway-level failures that eject a
/// pool, and for how long.
pub const DEFAULT_EJECT_AFTER: u32 = 5;
pub const DEFAULT_EJECT_SECONDS: u32 = 30;
/// Longest ejection and server-side timeout accepted: one year.
pub const MAX_SECONDS: u32 = 31_536_000;

/// `failover`: moving users off a pool Envoy cannot reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failover {
    pub enabled: bool,
    pub eject_after: u32,
    pub eject_seconds: u32,
}

/// Server-side timeouts of an affinity value (`cookie.absoluteTimeout`,
/// `cookie.idleTimeout`), in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// Since the pool was assigned.
    pub absolute: Option<u32>,
    /// Since the value was last issued; renewed after half of it.
    pub idle: Option<u32>,
}

impl Timeouts {
    /// Whether values carry a stamp and requests need the clock.
    pub fn is_set(&self) -> bool {
        self.absolute.is_some() || self.idle.is_some()
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Affinity {
    /// The pool's name: the user is pinned until the cookie expires.
    #[default]
    Pool,
    /// A random per-user key; the pool is recomputed from it by weighted
    /// rendezvous hashing, so weight changes move only the needed users.
    Ramp,
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub weight: u32,
    pub cluster: String,
    /// Pinned users are moved out (rollback); requires weight 0.
    pub evict: bool,
    /// Weight 0, the target of a rule, and affinity values unsigned: only
    /// a rule may send users here. A value naming the pool is a client's
    /// own claim (anyone can write one), so it is not honoured.
    pub rules_only: bool,
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
    pub failover: Failover,
    pub timeouts: Timeouts,
    /// Request and response header carrying the affinity value for clients
    /// without cookies, when set.
    pub session_header: Option<String>,
    /// Call Envoy's `clear_route_cache` after setting the routing headers.
    /// Off by default: the module's ABI is 0.2.1, for which every Envoy
    /// clears the route cache itself when a filter changes request headers.
    pub clear_route_cache: bool,
    /// Count responses per pool and class (`sticky_split_responses_total`).
    pub response_counters: bool,
    /// Write each request's pool and reason as filter state
    /// (`wasm.sticky_split.pool`, `wasm.sticky_split.reason`) for access logs
    /// and Istio's Telemetry API.
    pub export_decision: bool,
    picker: WeightedPicker,
    rendezvous: Rendezvous,
    codec: Codec,
    /// Pool indexes sorted by name, for lookups of cookie values (bytes).
    by_name: Vec<usize>,
    set_cookie: SetCookieTemplate,
    needs: RequestNeeds,
}

/// What the decision reads from a request beyond the Cookie header, worked
/// out once per config so that only that is fetched from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestNeeds {
    /// Request headers other than the path and cookies (header rules, a
    /// `hashOn` header): the whole header map, since a header may repeat.
    pub header_map: bool,
    /// `:path` (path and query rules).
    pub path: bool,
    /// Cookies that rules and `hashOn` read, the affinity cookie included
    /// when a rule names it.
    pub cookies: Vec<String>,
    /// The session header, read when configured.
    pub session_header: Option<String>,
    /// The clock (server-side timeouts).
    pub clock: bool,
}

impl RequestNeeds {
    fn of(
        rules: &[Rule],
        hash_on: Option<&HashOn>,
        session_header: Option<&String>,
        timeouts: Timeouts,
    ) -> RequestNeeds {
        let mut cookies: Vec<String> = Vec::new();
        let named = rules
            .iter()
            .flat_map(Rule::cookie_names)
            .chain(match hash_on {
                Some(HashOn::Cookie(c)) => Some(c.as_str()),
                _ => None,
            });
        for name in named {
            if !cookies.iter().any(|c| c == name) {
                cookies.push(name.to_string());
            }
        }
        RequestNeeds {
            header_map: rules.iter().any(Rule::reads_headers)
                || matches!(hash_on, Some(HashOn::Header(_)))
                || session_header.is_some(),
            path: rules.iter().any(Rule::reads_path),
            cookies,
            session_header: session_header.cloned(),
            clock: timeouts.is_set(),
        }
    }
}

impl Config {
    /// Parses and validates the plugin configuration bytes as Envoy hands them
    /// over, reading the signing key (if any) from the process environment
    /// (inside Envoy: the VM's `environment_variables`).
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
        validate::validate(parse::parse(bytes)?, env)
    }

    /// Whether the filter looks at responses (their status, and Envoy's
    /// response flags for a 5xx): for the response counters or failover.
    pub fn reads_responses(&self) -> bool {
        self.response_counters || self.failover.enabled
    }

    /// A fresh pool-health state for failover (one per VM), `None` when
    /// failover is off.
    pub fn health(&self) -> Option<Health> {
        self.failover.enabled.then(|| {
            Health::new(
                self.pools.iter().map(|p| p.weight).collect(),
                self.failover.eject_after,
                self.failover.eject_seconds,
            )
        })
    }

    /// What the decision reads from a request.
    pub fn needs(&self) -> &RequestNeeds {
        &self.needs
    }

    /// The pool whose name is exactly `name` (bytes from a cookie).
    pub fn pool_by_name(&self, name: &[u8]) -> Option<usize> {
        lookup_name(&self.pools, &self.by_name, name)
    }

    /// The pool for a user key, by weighted rendezvous hashing.
    pub fn pool_for_key(&self, key_hash: u64) -> usize {
        self.rendezvous.pick(key_hash)
    }

    /// The pool for a user key among the pools not marked in `avoid`; `None`
    /// when every pool with weight is avoided.
    pub fn pool_for_key_avoiding(&self, key_hash: u64, avoid: &[bool]) -> Option<usize> {
        self.rendezvous
            .pick_where(key_hash, |i| !avoid.get(i).copied().unwrap_or(false))
    }

    /// Reads an affinity value (cookie or session header).
    pub fn decode_cookie(&self, value: &[u8]) -> Verdict {
        self.codec.decode(value, |name| self.pool_by_name(name))
    }

    /// Reads an affinity value with its stamp, if values carry one.
    pub fn decode_stamped(&self, value: &[u8]) -> (Verdict, Option<Stamp>) {
        self.codec
            .decode_stamped(value, |name| self.pool_by_name(name))
    }

    /// The affinity value for a payload (unstamped).
    pub fn encode_cookie(&self, payload: Payload) -> Option<String> {
        self.encode_stamped(payload, None)
    }

    /// The affinity value for a payload and stamp (the stamp is written when
    /// a server-side timeout is configured).
    pub fn encode_stamped(&self, payload: Payload, stamp: Option<Stamp>) -> Option<String> {
        self.codec
            .encode_stamped(payload, stamp, |i| self.pool(i).map(|p| p.name.as_str()))
    }

    /// Picks a pool in proportion to the weights from one uniform 64-bit draw.
    pub fn pick(&self, draw: u64) -> usize {
        self.picker.pick(draw)
    }

    /// As [`Config::pick`] among the pools not marked in `avoid`; `None` when
    /// no pool with weight is left.
    pub fn pick_avoiding(&self, draw: u64, avoid: &[bool]) -> Option<usize> {
        let weights = self
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| match avoid.get(i) {
                Some(true) => 0,
                _ => p.weight,
            });
        WeightedPicker::new(weights).map(|picker| picker.pick(draw))
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
