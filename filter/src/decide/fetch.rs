//! Which request headers to fetch from the host, and when: the fetch policy
//! behind a small trait, so that it is tested natively and the glue only
//! answers the calls.
//!
//! Envoy's single-value getter returns the first header of a name; reading
//! the whole map costs more. A request rarely repeats Cookie (Envoy joins
//! HTTP/2 and HTTP/3 cookie crumbs; HTTP/1.1 clients must send one header,
//! and Envoy does not join theirs), so the policy is:
//! - the whole map when rules or `hashOn` read other headers;
//! - otherwise the first Cookie header (and `:path` for path rules), and the
//!   whole map only when that first header cannot settle the decision;
//! - `:scheme` only when a cookie is issued and `Secure` follows the request.
//!
//! Either way there is one decision and at most one random draw per request.

use rand_core::Rng;

use super::{finish, resolve, Decision, Reason, Resolved};
use crate::config::{Config, Secure};
use crate::request::{cookies, is_https, Headers, Request};

/// Where request headers come from (the host, inside Envoy).
pub trait HeaderSource {
    /// The first value of request header `name` (lowercase), as bytes.
    fn first(&mut self, name: &str) -> Option<Vec<u8>>;
    /// Every request header, in order.
    fn all(&mut self) -> Headers;
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub decision: Decision,
    /// The `Set-Cookie` value to append to the response, when (re)assigned.
    pub set_cookie: Option<String>,
}

/// Decides for the request `source` describes, fetching only what the
/// decision needs.
pub fn route<S: HeaderSource + ?Sized, R: Rng + ?Sized>(
    config: &Config,
    source: &mut S,
    rng: &mut R,
) -> Routed {
    let needs = config.needs();
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
    let mut resolved = resolve(config, &Request::new(&headers));
    let first_cookie = headers
        .iter()
        .find(|(n, _)| n == "cookie")
        .map(|(_, v)| v.as_slice());
    let mut all = None;
    if let (false, Some(first)) = (complete, first_cookie) {
        if !settled_by_first_cookie_header(config, first, &resolved) {
            // another Cookie header may hold what the first lacks
            let headers = source.all();
            resolved = resolve(config, &Request::new(&headers));
            all = Some(headers);
        }
    }
    let decision = finish(config, resolved, rng);
    let set_cookie = decision
        .cookie
        .and_then(|payload| config.encode_cookie(payload))
        .map(|value| {
            let https = config.cookie.secure == Secure::Auto
                && match (complete, &all) {
                    (true, _) => Request::new(&headers).is_https(),
                    (false, Some(all)) => Request::new(all).is_https(),
                    (false, None) => source.first(":scheme").is_some_and(|s| is_https(&s)),
                };
            config.set_cookie_header(&value, https)
        });
    Routed {
        decision,
        set_cookie,
    }
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

/// A header list as a [`HeaderSource`] (tests, fuzzing, benchmarks), counting
/// how often the whole map was asked for.
#[derive(Debug, Clone, Default)]
pub struct ListedHeaders {
    pub headers: Headers,
    pub full_reads: usize,
    pub single_reads: usize,
}

impl ListedHeaders {
    pub fn new(headers: Headers) -> Self {
        ListedHeaders {
            headers,
            full_reads: 0,
            single_reads: 0,
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
}
