//! The request: one decision, fetching only what it needs, and what it
//! writes (the routing headers, the exported decision, the cookie and
//! session values the response will carry).

use rand_core::Rng;

use super::StreamHost;
use crate::config::{Config, Secure};
use crate::cookie::Stamp;
use crate::decide::{finish, resolve_with, settled_by_first_cookie_header, Conditions, Decision};
use crate::health::Health;
use crate::metrics;
use crate::request::{is_https, Protocol, Request};

/// The property paths of the exported decision (one element each: Envoy
/// prefixes `wasm.` to name the filter state).
pub const EXPORTED_POOL: &str = "sticky_split.pool";
pub const EXPORTED_REASON: &str = "sticky_split.reason";

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
    /// What the request speaks; read only when responses are judged.
    pub protocol: Protocol,
}

impl Routed {
    /// The request headers to set, replacing every copy the client sent
    /// (so a client cannot choose its pool): the pool's name in the routing
    /// header, and its cluster in the cluster header when one is configured.
    pub fn request_headers<'a>(
        &self,
        config: &'a Config,
    ) -> impl Iterator<Item = (&'a str, &'a str)> {
        let pool = config.pool(self.decision.pool);
        let route = pool.map(|p| (config.route_header.as_str(), p.name.as_str()));
        let cluster = pool.and_then(|p| {
            let header = config.cluster_header.as_deref()?;
            Some((header, p.cluster.as_str()))
        });
        route.into_iter().chain(cluster)
    }

    /// The filter state to write when the config exports decisions: the
    /// pool's name and the reason, under property paths Envoy keeps as
    /// `wasm.sticky_split.pool` and `wasm.sticky_split.reason`.
    pub fn exported<'a>(
        &self,
        config: &'a Config,
    ) -> impl Iterator<Item = (&'static str, &'a str)> {
        let pool = config
            .pool(self.decision.pool)
            .filter(|_| config.export_decision);
        let reason = self.decision.reason.as_str();
        pool.into_iter()
            .flat_map(move |p| [(EXPORTED_POOL, p.name.as_str()), (EXPORTED_REASON, reason)])
    }

    /// The request counter of this decision.
    pub fn counter(&self) -> usize {
        metrics::slot(self.decision.pool, self.decision.reason)
    }
}

/// Decides for the request `source` describes, fetching only what the
/// decision needs. `health`: the VM's pool health, when failover is on;
/// `has_body`: the request headers did not end the stream.
pub fn route<S: StreamHost + ?Sized, R: Rng + ?Sized>(
    config: &Config,
    source: &mut S,
    rng: &mut R,
    mut health: Option<&mut Health>,
    has_body: bool,
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
        (source.request_headers(), true)
    } else {
        let mut partial = Vec::with_capacity(2);
        if needs.path {
            if let Some(path) = source.request_header(":path") {
                partial.push((":path".to_string(), path));
            }
        }
        if let Some(cookie) = source.request_header("cookie") {
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
            let headers = source.request_headers();
            resolved = resolve_with(config, &Request::new(&headers), cond);
            all = Some(headers);
        }
    }
    let decision = finish(config, resolved, cond, rng);
    let probe = health.is_some_and(|h| h.claim_probe(decision.pool, now.unwrap_or(0)));
    // every header, when they were read; else single reads on demand
    let whole = if complete {
        Some(&headers)
    } else {
        all.as_ref()
    };
    // gRPC changes how the response is judged. A gRPC call always has a
    // body, so a request without one (a plain GET) costs no read.
    let protocol = match whole {
        _ if !config.reads_responses() => Protocol::Http,
        Some(h) => Protocol::of(Request::new(h).header("content-type").as_deref()),
        None if has_body => Protocol::of(source.request_header("content-type").as_deref()),
        None => Protocol::Http,
    };
    let (set_cookie, session_value) = issue(config, &decision, now, || match whole {
        Some(h) => Request::new(h).is_https(),
        None => source
            .request_header(":scheme")
            .is_some_and(|s| is_https(&s)),
    });
    Routed {
        decision,
        set_cookie,
        session_value,
        probe,
        protocol,
    }
}

/// The `Set-Cookie` value and the session header value that carry
/// `decision`'s affinity value, if it writes one: stamped at `now` when a
/// server-side timeout is configured, `Secure` from `https` (asked only when
/// a cookie is issued and `secure` is `"auto"`).
pub(crate) fn issue(
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
