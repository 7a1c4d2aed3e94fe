//! The per-request decision: which pool, why, and what (if anything) to write
//! into the affinity cookie. Pure: the glue hands in the request headers and
//! a random source, and applies the result.
//!
//! Precedence, first that applies:
//! 1. **rules**, in order;
//! 2. a **valid affinity cookie** (not evicted, current generation, genuine
//!    MAC): a pinned pool, or a ramp key whose pool is recomputed;
//! 3. the **hashOn** key, if the request carries one;
//! 4. a **weighted pick** (in ramp mode: a new random key, hashed).

use rand_core::Rng;

use crate::affinity::{Parsed, Payload};
use crate::config::{Affinity, Config, HashOn};
use crate::hash;
use crate::request::Request;

/// Why a request went to its pool. The names are stable: metrics and the
/// debug header use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// A rule matched.
    Rule,
    /// The affinity cookie pins a configured pool with weight above 0.
    Sticky,
    /// The affinity cookie pins a pool with weight 0 (draining): the user
    /// stays there.
    DrainedPinned,
    /// The pool is a function of the user key taken from `hashOn`.
    Hash,
    /// The affinity cookie holds a ramp key; its pool was recomputed.
    Ramp,
    /// No affinity cookie: weighted pick, cookie issued.
    New,
    /// The affinity cookie names no configured pool, is malformed, or is of
    /// another generation: weighted pick, cookie rewritten.
    Reassigned,
    /// The affinity cookie pins a pool marked `evict`: moved, cookie rewritten.
    Evicted,
    /// Signing is on and the cookie's MAC is missing or wrong: treated as a
    /// new user, cookie rewritten.
    Forged,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Rule,
        Reason::Sticky,
        Reason::DrainedPinned,
        Reason::Hash,
        Reason::Ramp,
        Reason::New,
        Reason::Reassigned,
        Reason::Evicted,
        Reason::Forged,
    ];

    /// Position in [`Reason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rule => "rule",
            Reason::Sticky => "sticky",
            Reason::DrainedPinned => "drained-pinned",
            Reason::Hash => "hash",
            Reason::Ramp => "ramp",
            Reason::New => "new",
            Reason::Reassigned => "reassigned",
            Reason::Evicted => "evicted",
            Reason::Forged => "forged",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into `Config::pools`.
    pub pool: usize,
    pub reason: Reason,
    /// What to write into the affinity cookie on the response, if anything.
    pub cookie: Option<Payload>,
}

/// Decides for one request.
pub fn decide<R: Rng + ?Sized>(config: &Config, req: &Request, rng: &mut R) -> Decision {
    // 1. rules
    if let Some(rule) = config.rules.iter().find(|r| r.matches(req)) {
        return Decision {
            pool: rule.pool,
            reason: Reason::Rule,
            cookie: rule.sticky.then_some(Payload::Pool(rule.pool)),
        };
    }

    // 2. the affinity cookie: the first valid value wins (browsers send the
    // most specific path first); otherwise remember the worst problem seen.
    let name = config.cookie.name.as_bytes();
    let mut problem: Option<Reason> = None;
    let mut note = |r: Reason| problem = Some(problem.map_or(r, |p| p.max(r)));
    for header in req.cookie_headers() {
        for value in crate::cookie::values(header, name) {
            match config.decode_cookie(value) {
                Parsed::Valid(Payload::Pool(pool)) => match config.pool(pool) {
                    Some(p) if p.evict => note(Reason::Evicted),
                    Some(p) => {
                        let reason = if p.weight == 0 {
                            Reason::DrainedPinned
                        } else {
                            Reason::Sticky
                        };
                        return Decision {
                            pool,
                            reason,
                            cookie: None,
                        };
                    }
                    None => note(Reason::Reassigned),
                },
                Parsed::Valid(Payload::RampKey(key)) => {
                    return Decision {
                        pool: config.pool_for_key(hash::mix(key)),
                        reason: Reason::Ramp,
                        cookie: None,
                    };
                }
                Parsed::Forged => note(Reason::Forged),
                Parsed::Stale | Parsed::Unknown => note(Reason::Reassigned),
            }
        }
    }

    // 3. the hashOn key; no cookie needed. A bad affinity cookie stays
    // ignored (the key decides every time).
    if let Some(key_hash) = hash_key(config, req) {
        return Decision {
            pool: config.pool_for_key(key_hash),
            reason: Reason::Hash,
            cookie: None,
        };
    }

    // 4. a new assignment: one 64-bit draw
    let draw = rng.next_u64();
    let (pool, cookie) = match config.affinity {
        Affinity::Pool => {
            let pool = config.pick(draw);
            (pool, Payload::Pool(pool))
        }
        Affinity::Ramp => (config.pool_for_key(hash::mix(draw)), Payload::RampKey(draw)),
    };
    Decision {
        pool,
        reason: problem.unwrap_or(Reason::New),
        cookie: Some(cookie),
    }
}

/// Whether a decision made from only the first Cookie header a request
/// carries (`first`) is the one all its Cookie headers would give.
///
/// Envoy's single-value getter returns the first header of a name, and
/// reading the whole map costs more; a request rarely repeats Cookie (HTTP/2
/// and HTTP/3 crumbs are joined by Envoy; HTTP/1.1 clients must send one).
/// The first header settles the decision when every cookie that rules and
/// `hashOn` read is in it, and the affinity cookie's first valid value is in
/// it (or a rule decided). Otherwise the glue reads the map.
pub fn settled_by_first_cookie_header(config: &Config, first: &[u8], decision: &Decision) -> bool {
    matches!(
        decision.reason,
        Reason::Rule | Reason::Sticky | Reason::DrainedPinned | Reason::Ramp
    ) && config.reads().cookies.iter().all(|name| {
        crate::cookie::values(first, name.as_bytes())
            .next()
            .is_some()
    })
}

/// The hash of the `hashOn` user key, if the request has a non-empty one.
fn hash_key(config: &Config, req: &Request) -> Option<u64> {
    let key_hash = |key: &[u8]| (!key.is_empty()).then(|| hash::key_hash(key));
    match config.hash_on.as_ref()? {
        HashOn::Header(name) => key_hash(&req.header(name)?),
        HashOn::Cookie(name) => key_hash(req.cookie(name.as_bytes())?),
    }
}
