//! Why a request went to its pool.

/// Why a request went to its pool. The names are stable: metrics and the
/// debug header use them.
///
/// The order of the variants means two things, so change it with care:
/// - a variant's position in [`Reason::ALL`] is its counter's slot in the
///   per-pool counter table (`metrics::slot`);
/// - among the problems an affinity value can have (`Reassigned`, `Expired`,
///   `Evicted`, `Forged`, `Failover`), the later one wins when a request
///   carries several: a pool out of service is reported over a forgery, a
///   forgery over an eviction, an eviction over an expiry, an expiry over an
///   unknown pool.
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
    /// The affinity value was signed with a previous signing key: the user
    /// keeps the pool (or ramp key), and the value is issued again under the
    /// current key.
    Resigned,
    /// No affinity cookie: weighted pick, cookie issued.
    New,
    /// The affinity cookie names no configured pool, is malformed, is of
    /// another generation, or is an unsigned value naming a pool only rules
    /// reach: weighted pick, cookie rewritten.
    Reassigned,
    /// The affinity value is past `cookie.absoluteTimeout` or
    /// `cookie.idleTimeout`, or carries no issue time while one is set:
    /// weighted pick, cookie rewritten.
    Expired,
    /// The affinity cookie pins a pool marked `evict`: moved, cookie rewritten.
    Evicted,
    /// Signing is on and the cookie's MAC is missing or wrong: treated as a
    /// new user, cookie rewritten.
    Forged,
    /// The user's pool is out of service (ejected after gateway-level
    /// failures): moved, cookie rewritten (a ramp key is kept).
    Failover,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::Rule,
        Reason::Sticky,
        Reason::DrainedPinned,
        Reason::Hash,
        Reason::Ramp,
        Reason::Resigned,
        Reason::New,
        Reason::Reassigned,
        Reason::Expired,
        Reason::Evicted,
        Reason::Forged,
        Reason::Failover,
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
            Reason::Resigned => "resigned",
            Reason::New => "new",
            Reason::Reassigned => "reassigned",
            Reason::Expired => "expired",
            Reason::Evicted => "evicted",
            Reason::Forged => "forged",
            Reason::Failover => "failover",
        }
    }
}
