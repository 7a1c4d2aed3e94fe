//! What to read from the host, and when: the fetch policy behind a small
//! trait, so that it is tested natively and the glue only answers the calls.
//!
//! Envoy's single-value getter returns the first header of a name; reading
//! the whole map costs more. A request rarely repeats Cookie (Envoy joins
//! HTTP/2 and HTTP/3 cookie crumbs; HTTP/1.1 clients must send one header,
//! and Envoy does not join theirs), so the policy is:
//! - the whole map when rules or `hashOn` read other headers, or a session
//!   header is configured;
//! - otherwise the first Cookie header (and `:path` for path rules), and the
//!   whole map only when that first header cannot settle the decision;
//! - `:scheme` only when a cookie is issued and `Secure` follows the request;
//! - the clock only when a server-side timeout is configured or a pool is
//!   out of service.
//!
//! Either way there is one decision and at most one random draw per request
//! (a response that fails over takes one more).

use rand_core::Rng;

use super::{
    fail_over, finish, moves_on_failure, resolve_with, Conditions, Decision, Reason, Resolved,
};
use crate::config::{Config, Secure};
use crate::cookie::Stamp;
use crate::health::{Change, Health};
use crate::request::{cookies, is_https, Headers, Request};

/// What the filter reads from the host (Envoy, inside the VM).
pub trait HeaderSource {
    /// The first value of request header `name` (lowercase), as bytes.
    fn first(&mut self, name: &str) -> Option<Vec<u8>>;
    /// Every request header, in order.
    fn all(&mut self) -> Headers;
    /// Seconds since the Unix epoch.
    fn now(&mut self) -> u64;
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub decision: Decision,
    /// The `Set-Cookie` value to append to the response, when (re)assigned.
    pub set_cookie: Option<String>,
    /// The affinity value for the session header, when configured and
    /// (re)assigned.
    pub session_value: Option<String>,
    /// The request is the probe of a pool coming back from ejection.
    pub probe: bool,
}

/// Decides for the request `source` describes, fetching only what the
/// decision needs. `health`: the VM's pool health, when failover is on.
pub fn route<S: HeaderSource + ?Sized, R: Rng + ?Sized>(
    config: &Config,
    source: &mut S,
    rng: &mut R,
    mut health: Option<&mut Health>,
) -> Routed {
    let needs = config.needs();
    let troubled = health.as_ref().is_some_and(|h| !h.all_closed());
    let now = (needs.clock || troubled).then(|| source.now());
    let avoid = match (&mut health, now) {
        (Some(h), Some(now)) => h.out_of_service(now),
        _ => None,
    };
    let cond = Conditions {
        now,
        avoid: avoid.as_deref(),
    };
    let (headers, complete) = if needs.header_map {
        (source.all(), true)
    } else {
        let mut partial = Vec::with_capacity(2);
        if needs.path {
            if let Some(path) = source.first(":path") {
                partial.push((":path".to_string(), path));
            }
        }
        if let Some(cookie) = source.first("cookie") {
            partial.push(("cookie".to_string(), cookie));
        }
        (partial, false)
    };
    let mut resolved = resolve_with(config, &Request::new(&headers), cond);
    let first_cookie = headers
        .iter()
        .find(|(n, _)| n == "cookie")
        .map(|(_, v)| v.as_slice());
    let mut all = None;
    if let (false, Some(first)) = (complete, first_cookie) {
        if !settled_by_first_cookie_header(config, first, &resolved) {
            // another Cookie header may hold what the first lacks
            let headers = source.all();
            resolved = resolve_with(config, &Request::new(&headers), cond);
            all = Some(headers);
        }
    }
    let decision = finish(config, resolved, cond, rng);
    let probe = health.is_some_and(|h| h.routed(decision.pool));
    let (set_cookie, session_value) = issue(config, &decision, now, || match (complete, &all) {
        (true, _) => Request::new(&headers).is_https(),
        (false, Some(all)) => Request::new(all).is_https(),
        (false, None) => source.first(":scheme").is_some_and(|s| is_https(&s)),
    });
    Routed {
        decision,
        set_cookie,
        session_value,
        probe,
    }
}

/// The `Set-Cookie` value and the session header value that carry
/// `decision`'s affinity value, if it writes one: stamped at `now` when a
/// server-side timeout is configured, `Secure` from `https` (asked only when
/// a cookie is issued and `secure` is `"auto"`).
fn issue(
    config: &Config,
    decision: &Decision,
    now: Option<u64>,
    https: impl FnOnce() -> bool,
) -> (Option<String>, Option<String>) {
    let stamp = now.filter(|_| config.needs().clock).map(|now| {
        let now = u32::try_from(now).unwrap_or(u32::MAX);
        Stamp {
            assigned: decision.assigned.unwrap_or(now),
            issued: now,
        }
    });
    let Some(value) = decision
        .cookie
        .and_then(|payload| config.encode_stamped(payload, stamp))
    else {
        return (None, None);
    };
    let https = config.cookie.secure == Secure::Auto && https();
    let set_cookie = config.set_cookie_header(&value, https);
    (
        Some(set_cookie),
        config.session_header.as_ref().map(|_| value),
    )
}

/// Response classes counted per pool; `Gateway` is a 5xx that Envoy itself
/// produced because it could not reach the pool, apart from the
/// application's own 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
    Gateway,
}

impl Class {
    pub const COUNTED: [Class; 5] = [
        Class::Success,
        Class::Redirection,
        Class::ClientError,
        Class::ServerError,
        Class::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Informational => "1xx",
            Class::Success => "2xx",
            Class::Redirection => "3xx",
            Class::ClientError => "4xx",
            Class::ServerError => "5xx",
            Class::Gateway => "gateway",
        }
    }

    /// Position in [`Class::COUNTED`]; `None` for what is not counted.
    pub fn index(self) -> Option<usize> {
        Class::COUNTED.iter().position(|&c| c == self)
    }

    /// The class of a response with this status and, for a 5xx, Envoy's
    /// response flags.
    pub fn of(status: u16, flags: u64) -> Class {
        match status {
            100..=199 => Class::Informational,
            200..=299 => Class::Success,
            300..=399 => Class::Redirection,
            400..=499 => Class::ClientError,
            _ if flags & GATEWAY_FLAGS != 0 => Class::Gateway,
            _ => Class::ServerError,
        }
    }
}

/// Envoy's response flags (the `response.flags` attribute, legacy bit
/// positions) that mean Envoy could not get a response from the pool: UH no
/// healthy upstream, UR upstream reset before the response, UF connection
/// failure (refused, connect timeout), UC connection terminated, UO overflow
/// (circuit breaker). An application's own 5xx carries none of them.
pub const GATEWAY_FLAGS: u64 = 0x2 | 0x10 | 0x20 | 0x40 | 0x80;

/// What a response changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responded {
    pub class: Class,
    /// Replaces the planned `Set-Cookie`: the user was moved off a failing
    /// pool to this decision's pool.
    pub failed_over: Option<Decision>,
    pub set_cookie: Option<String>,
    pub session_value: Option<String>,
    /// The chosen pool was ejected by this response.
    pub ejected: bool,
}

/// Judges a response to a routed request: its class, the pool's health, and
/// for a gateway-level failure the user's new pool. `flags`: Envoy's
/// response flags (read for 5xx only).
pub fn respond<S: HeaderSource + ?Sized, R: Rng + ?Sized>(
    config: &Config,
    source: &mut S,
    rng: &mut R,
    health: Option<&mut Health>,
    routed: &Routed,
    status: u16,
    flags: u64,
) -> Responded {
    let class = Class::of(status, flags);
    let mut out = Responded {
        class,
        failed_over: None,
        set_cookie: None,
        session_value: None,
        ejected: false,
    };
    let Some(health) = health else {
        return out;
    };
    let pool = routed.decision.pool;
    let failed = class == Class::Gateway;
    // the clock only for a failure: an ejection needs its start (a success,
    // a probe's included, needs no time)
    let now = if failed { source.now() } else { 0 };
    out.ejected = health.record(pool, failed, now) == Change::Ejected;
    if !failed || !moves_on_failure(config, &routed.decision) {
        return out;
    }
    let avoid = health.out_of_service(now);
    let cond = Conditions {
        now: Some(now),
        avoid: avoid.as_deref(),
    };
    let headers = source.all();
    let req = Request::new(&headers);
    let Some(moved) = fail_over(config, &req, pool, cond, rng) else {
        return out;
    };
    (out.set_cookie, out.session_value) = issue(config, &moved, Some(now), || req.is_https());
    out.failed_over = Some(moved);
    out
}

/// Whether a resolution from only the first Cookie header a request carries
/// (`first`) is the one all its Cookie headers would give: a rule or a valid
/// affinity cookie decided, and every cookie that rules and `hashOn` read is
/// in that header. A new assignment or a hashOn decision is never settled
/// by it: a later header may carry a valid affinity cookie.
pub fn settled_by_first_cookie_header(config: &Config, first: &[u8], resolved: &Resolved) -> bool {
    matches!(
        resolved,
        Resolved::Decided(Decision {
            reason: Reason::Rule | Reason::Sticky | Reason::DrainedPinned | Reason::Ramp,
            ..
        })
    ) && config
        .needs()
        .cookies
        .iter()
        .all(|name| cookies::values(first, name.as_bytes()).next().is_some())
}

/// A header list as a [`HeaderSource`] (tests, fuzzing, benchmarks), with a
/// settable clock, counting the host reads.
#[derive(Debug, Clone, Default)]
pub struct ListedHeaders {
    pub headers: Headers,
    pub now: u64,
    pub full_reads: usize,
    pub single_reads: usize,
    pub clock_reads: usize,
}

impl ListedHeaders {
    pub fn new(headers: Headers) -> Self {
        ListedHeaders {
            headers,
            ..ListedHeaders::default()
        }
    }
}

impl HeaderSource for ListedHeaders {
    fn first(&mut self, name: &str) -> Option<Vec<u8>> {
        self.single_reads += 1;
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn all(&mut self) -> Headers {
        self.full_reads += 1;
        self.headers.clone()
    }

    fn now(&mut self) -> u64 {
        self.clock_reads += 1;
        self.now
    }
}
