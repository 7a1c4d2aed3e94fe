//! The per-request decision: which pool, why, and what (if anything) to write
//! into the affinity cookie. Pure: it reads a header view and takes at most
//! one random draw. [`fetch`] decides which headers to get from the host.
//!
//! Precedence, first that applies:
//! 1. **rules**, in order;
//! 2. a **valid affinity cookie** (not evicted, current generation, genuine
//!    MAC): a pinned pool, or a ramp key whose pool is recomputed;
//! 3. the **hashOn** key, if the request carries one;
//! 4. a **weighted pick** (in ramp mode: a new random key, hashed).

pub mod fetch;
mod reason;

use rand_core::Rng;

use crate::choice;
use crate::config::{Affinity, Config, HashOn};
use crate::cookie::{Payload, Verdict};
use crate::request::{cookies, Request};
pub use reason::Reason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into `Config::pools`.
    pub pool: usize,
    pub reason: Reason,
    /// What to write into the affinity cookie on the response, if anything.
    pub cookie: Option<Payload>,
}

/// Steps 1 to 3 of the precedence, which need no randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Decided(Decision),
    /// A new assignment is due, for this reason (`New`, or the worst problem
    /// the affinity cookie had).
    Assign(Reason),
}

/// Decides for one request whose headers are all in `req`.
pub fn decide<R: Rng + ?Sized>(config: &Config, req: &Request, rng: &mut R) -> Decision {
    finish(config, resolve(config, req), rng)
}

/// Completes a resolution, drawing once if a new assignment is due.
pub fn finish<R: Rng + ?Sized>(config: &Config, resolved: Resolved, rng: &mut R) -> Decision {
    match resolved {
        Resolved::Decided(d) => d,
        Resolved::Assign(reason) => assign(config, reason, rng.next_u64()),
    }
}

/// Steps 1 to 3: rules, the affinity cookie, the hashOn key.
pub fn resolve(config: &Config, req: &Request) -> Resolved {
    if let Some(rule) = config.rules.iter().find(|r| r.matches(req)) {
        return Resolved::Decided(Decision {
            pool: rule.pool,
            reason: Reason::Rule,
            cookie: rule.sticky.then_some(Payload::Pool(rule.pool)),
        });
    }
    let problem = match from_affinity_cookie(config, req) {
        Ok(decision) => return Resolved::Decided(decision),
        Err(problem) => problem,
    };
    // A bad affinity cookie stays ignored while a hashOn key decides.
    if let Some(key_hash) = hash_key(config, req) {
        return Resolved::Decided(Decision {
            pool: config.pool_for_key(key_hash),
            reason: Reason::Hash,
            cookie: None,
        });
    }
    Resolved::Assign(problem.unwrap_or(Reason::New))
}

/// The first valid affinity cookie value's decision (browsers send the most
/// specific path first); otherwise the worst problem seen, if any.
fn from_affinity_cookie(config: &Config, req: &Request) -> Result<Decision, Option<Reason>> {
    let name = config.cookie.name.as_bytes();
    let mut problem: Option<Reason> = None;
    let mut note = |r: Reason| problem = Some(problem.map_or(r, |p| p.max(r)));
    for header in req.cookie_headers() {
        for value in cookies::values(header, name) {
            match config.decode_cookie(value) {
                Verdict::Valid(Payload::Pool(pool)) => match config.pool(pool) {
                    Some(p) if p.evict => note(Reason::Evicted),
                    Some(p) => {
                        let reason = if p.weight == 0 {
                            Reason::DrainedPinned
                        } else {
                            Reason::Sticky
                        };
                        return Ok(Decision {
                            pool,
                            reason,
                            cookie: None,
                        });
                    }
                    None => note(Reason::Reassigned),
                },
                Verdict::Valid(Payload::RampKey(key)) => {
                    return Ok(Decision {
                        pool: config.pool_for_key(choice::mix(key)),
                        reason: Reason::Ramp,
                        cookie: None,
                    });
                }
                Verdict::Forged => note(Reason::Forged),
                Verdict::Stale | Verdict::Unknown => note(Reason::Reassigned),
            }
        }
    }
    Err(problem)
}

/// Step 4: a new assignment from one 64-bit draw.
fn assign(config: &Config, reason: Reason, draw: u64) -> Decision {
    let (pool, cookie) = match config.affinity {
        Affinity::Pool => {
            let pool = config.pick(draw);
            (pool, Payload::Pool(pool))
        }
        Affinity::Ramp => (
            config.pool_for_key(choice::mix(draw)),
            Payload::RampKey(draw),
        ),
    };
    Decision {
        pool,
        reason,
        cookie: Some(cookie),
    }
}

/// The hash of the `hashOn` user key, if the request has a non-empty one.
fn hash_key(config: &Config, req: &Request) -> Option<u64> {
    let key_hash = |key: &[u8]| (!key.is_empty()).then(|| choice::key_hash(key));
    match config.hash_on.as_ref()? {
        HashOn::Header(name) => key_hash(&req.header(name)?),
        HashOn::Cookie(name) => key_hash(req.cookie(name.as_bytes())?),
    }
}
