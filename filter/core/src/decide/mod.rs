//! The per-request decision: which pool, why, and what (if anything) to write
//! into the affinity cookie. Pure: it reads a header view and takes at most
//! one random draw. `stream` decides which headers to get from the host.
//!
//! Precedence, first that applies:
//! 1. **rules**, in order;
//! 2. a **valid affinity value**, from the cookie or else the session header
//!    (not evicted, current generation, genuine MAC, within the server-side
//!    timeouts): a pinned pool, or a ramp key whose pool is recomputed;
//! 3. the **hashOn** key, if the request carries one;
//! 4. a **weighted pick** (in ramp mode: a new random key, hashed).
//!
//! Pools out of service (ejected by failover) are avoided by steps 2 to 4:
//! a user pinned there is re-picked (`failover`); rules still apply.

mod reason;

use rand_core::Rng;

use crate::choice;
use crate::config::{Affinity, Config, HashOn};
use crate::cookie::{Payload, Stamp, Verdict};
use crate::request::{cookies, Request};
pub use reason::Reason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into `Config::pools`.
    pub pool: usize,
    pub reason: Reason,
    /// What to write into the affinity value on the response, if anything.
    pub cookie: Option<Payload>,
    /// When the written value's pool was first assigned, for a renewal that
    /// keeps it (`None`: assigned now).
    pub assigned: Option<u32>,
}

impl Decision {
    /// Whether the user gets a pool they did not have: a new pick (`new`,
    /// `reassigned`, `expired`, `evicted`, `forged`, `failover`) or a sticky
    /// rule's pin. A renewal or a re-signing keeps the pool they had.
    pub fn assigns(&self) -> bool {
        match self.reason {
            Reason::New
            | Reason::Reassigned
            | Reason::Expired
            | Reason::Evicted
            | Reason::Forged
            | Reason::Failover => true,
            Reason::Rule => self.cookie.is_some(),
            Reason::Sticky
            | Reason::DrainedPinned
            | Reason::Hash
            | Reason::Ramp
            | Reason::Resigned => false,
        }
    }
}

/// What routing needs besides the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// Seconds since the Unix epoch, when a server-side timeout needs it.
    pub now: Option<u64>,
    /// Pools out of service (`avoid[i]`), when any is.
    pub avoid: Option<&'a [bool]>,
}

impl Conditions<'_> {
    fn avoids(&self, pool: usize) -> bool {
        self.avoid
            .and_then(|a| a.get(pool).copied())
            .unwrap_or(false)
    }
}

/// Steps 1 to 3 of the precedence, which need no randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Decided(Decision),
    /// A new assignment is due, for this reason (`New`, or the worst problem
    /// the affinity value had).
    Assign(Reason),
}

/// Decides for one request whose headers are all in `req`.
pub fn decide<R: Rng + ?Sized>(
    config: &Config,
    req: &Request,
    cond: Conditions,
    rng: &mut R,
) -> Decision {
    finish(config, resolve_with(config, req, cond), cond, rng)
}

/// Completes a resolution, drawing once if a new assignment is due.
pub fn finish<R: Rng + ?Sized>(
    config: &Config,
    resolved: Resolved,
    cond: Conditions,
    rng: &mut R,
) -> Decision {
    match resolved {
        Resolved::Decided(d) => d,
        Resolved::Assign(reason) => assign(config, reason, cond, rng.next_u64()),
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
            reason: Reason::Rule
                | Reason::Sticky
                | Reason::DrainedPinned
                | Reason::Ramp
                | Reason::Resigned,
            ..
        })
    ) && config
        .needs()
        .cookies
        .iter()
        .all(|name| cookies::values(first, name.as_bytes()).next().is_some())
}

/// Steps 1 to 3: rules, the affinity value, the hashOn key.
pub fn resolve_with(config: &Config, req: &Request, cond: Conditions) -> Resolved {
    if let Some(rule) = config.rules.iter().find(|r| r.matches(req)) {
        return Resolved::Decided(Decision {
            pool: rule.pool,
            reason: Reason::Rule,
            cookie: rule.sticky.then_some(Payload::Pool(rule.pool)),
            assigned: None,
        });
    }
    let problem = match from_affinity_value(config, req, cond) {
        Ok(decision) => return Resolved::Decided(decision),
        Err(problem) => problem,
    };
    // A bad affinity value stays ignored while a hashOn key decides.
    if let Some(key_hash) = hash_key(config, req) {
        return Resolved::Decided(Decision {
            pool: keyed_pool(config, key_hash, cond),
            reason: Reason::Hash,
            cookie: None,
            assigned: None,
        });
    }
    Resolved::Assign(problem.unwrap_or(Reason::New))
}

/// The first valid affinity value's decision: the cookie's values in order
/// (browsers send the most specific path first), then the session header;
/// otherwise the worst problem seen, if any.
fn from_affinity_value(
    config: &Config,
    req: &Request,
    cond: Conditions,
) -> Result<Decision, Option<Reason>> {
    let name = config.cookie.name.as_bytes();
    // every element of the session header, however sent: the first valid
    // value wins, as among cookies (an affinity value never holds a comma)
    let session = config
        .session_header
        .as_deref()
        .into_iter()
        .flat_map(|h| req.header_elements(h));
    let values = req
        .cookie_headers()
        .flat_map(|header| cookies::values(header, name))
        .chain(session);
    let mut problem: Option<Reason> = None;
    for value in values {
        match read_affinity_value(config, value, cond) {
            Ok(decision) => return Ok(decision),
            Err(r) => problem = Some(problem.map_or(r, |p| p.max(r))),
        }
    }
    Err(problem)
}

/// One affinity value: the decision it makes, or why it makes none.
fn read_affinity_value(
    config: &Config,
    value: &[u8],
    cond: Conditions,
) -> Result<Decision, Reason> {
    let (verdict, stamp) = config.decode_stamped(value);
    let (payload, resign) = match verdict {
        Verdict::Valid(payload) => (payload, false),
        Verdict::ValidUnderPreviousKey(payload) => (payload, true),
        Verdict::Forged => return Err(Reason::Forged),
        Verdict::Stale | Verdict::Unknown => return Err(Reason::Reassigned),
    };
    if let Payload::Pool(pool) = payload {
        match config.pool(pool) {
            // a pool only rules reach: the value is the client's claim
            None => return Err(Reason::Reassigned),
            Some(p) if p.rules_only => return Err(Reason::Reassigned),
            Some(p) if p.evict => return Err(Reason::Evicted),
            Some(_) => {}
        }
    }
    let renew = match (config.timeouts.is_set(), cond.now) {
        (true, Some(now)) => match freshness_of(config, stamp, now) {
            Freshness::Expired => return Err(Reason::Expired),
            Freshness::Renew => true,
            Freshness::Valid => false,
        },
        _ => false,
    };
    let (pool, kept) = match payload {
        Payload::Pool(pool) if cond.avoids(pool) => return Err(Reason::Failover),
        Payload::Pool(pool) => match config.pool(pool) {
            Some(p) if p.weight == 0 => (pool, Reason::DrainedPinned),
            _ => (pool, Reason::Sticky),
        },
        Payload::RampKey(key) => {
            let natural = config.pool_for_key(choice::mix(key));
            if cond.avoids(natural) {
                (keyed_pool(config, choice::mix(key), cond), Reason::Failover)
            } else {
                (natural, Reason::Ramp)
            }
        }
    };
    // a value of a previous key keeps its pool (or key) and is issued again
    let reason = match kept {
        Reason::Sticky | Reason::DrainedPinned | Reason::Ramp if resign => Reason::Resigned,
        r => r,
    };
    Ok(Decision {
        pool,
        reason,
        cookie: (renew || reason == Reason::Resigned).then_some(payload),
        assigned: stamp.map(|s| s.assigned),
    })
}

enum Freshness {
    Valid,
    /// Valid, and past half of the idle timeout: issue it again.
    Renew,
    Expired,
}

/// A stamped value against the configured timeouts; a value without a
/// stamp (an older config's, or the hand-written pattern's) has expired.
fn freshness_of(config: &Config, stamp: Option<Stamp>, now: u64) -> Freshness {
    let Some(stamp) = stamp else {
        return Freshness::Expired;
    };
    let age = now.saturating_sub(u64::from(stamp.assigned));
    let idle = now.saturating_sub(u64::from(stamp.issued));
    let limits = config.timeouts;
    if limits.absolute.is_some_and(|a| age > u64::from(a))
        || limits.idle.is_some_and(|i| idle > u64::from(i))
    {
        return Freshness::Expired;
    }
    match limits.idle {
        Some(i) if idle > u64::from(i / 2) => Freshness::Renew,
        _ => Freshness::Valid,
    }
}

/// The pool a key hashes to, among the pools in service when its own is
/// not (and when none is left, its own).
fn keyed_pool(config: &Config, key_hash: u64, cond: Conditions) -> usize {
    let natural = config.pool_for_key(key_hash);
    match cond.avoid {
        Some(avoid) if cond.avoids(natural) => config
            .pool_for_key_avoiding(key_hash, avoid)
            .unwrap_or(natural),
        _ => natural,
    }
}

/// Step 4: a new assignment from one 64-bit draw, among the pools in
/// service (all pools, should none with weight be left).
fn assign(config: &Config, reason: Reason, cond: Conditions, draw: u64) -> Decision {
    let (pool, cookie) = match config.affinity {
        Affinity::Pool => {
            let pool = cond
                .avoid
                .and_then(|avoid| config.pick_avoiding(draw, avoid))
                .unwrap_or_else(|| config.pick(draw));
            (pool, Payload::Pool(pool))
        }
        Affinity::Ramp => (
            keyed_pool(config, choice::mix(draw), cond),
            Payload::RampKey(draw),
        ),
    };
    Decision {
        pool,
        reason,
        cookie: Some(cookie),
        assigned: None,
    }
}

/// Whether a user whose request was decided so is moved when Envoy fails to
/// reach the pool: users whose affinity cookie names a pool. Rules keep
/// their pool (the next request would match again), and so do hashOn and
/// ramp users (their pool is a function of their key; ejection moves them).
pub fn moves_on_failure(config: &Config, decision: &Decision) -> bool {
    config.affinity == Affinity::Pool
        && !matches!(decision.reason, Reason::Rule | Reason::Hash | Reason::Ramp)
}

/// The new pool for a user whose request to `failing` failed at the
/// gateway: picked as for a new user (rules, then hashOn, then weights),
/// never `failing` nor a pool out of service. `None` when no other pool
/// with weight (or matching rule) is left.
pub fn fail_over<R: Rng + ?Sized>(
    config: &Config,
    req: &Request,
    failing: usize,
    cond: Conditions,
    rng: &mut R,
) -> Option<Decision> {
    let mut avoid = cond
        .avoid
        .map_or_else(|| vec![false; config.pools.len()], <[bool]>::to_vec);
    if let Some(slot) = avoid.get_mut(failing) {
        *slot = true;
    }
    let moved = |pool| Decision {
        pool,
        reason: Reason::Failover,
        cookie: Some(Payload::Pool(pool)),
        assigned: None,
    };
    if let Some(rule) = config.rules.iter().find(|r| r.matches(req)) {
        if !avoid.get(rule.pool).copied().unwrap_or(true) {
            return Some(moved(rule.pool));
        }
    }
    if let Some(key_hash) = hash_key(config, req) {
        return config.pool_for_key_avoiding(key_hash, &avoid).map(moved);
    }
    config.pick_avoiding(rng.next_u64(), &avoid).map(moved)
}

/// The hash of the `hashOn` user key, if the request has a non-empty one.
fn hash_key(config: &Config, req: &Request) -> Option<u64> {
    let key_hash = |key: &[u8]| (!key.is_empty()).then(|| choice::key_hash(key));
    match config.hash_on.as_ref()? {
        HashOn::Header(name) => key_hash(&req.header(name)?),
        HashOn::Cookie(name) => key_hash(req.cookie(name.as_bytes())?),
    }
}
