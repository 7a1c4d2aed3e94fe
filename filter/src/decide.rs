//! The per-request decision: which pool, why, and whether to (re)write the
//! affinity cookie. Pure: the glue hands in the Cookie header values and a
//! random source, and applies the result.

use rand_core::Rng;

use crate::config::Config;
use crate::cookie;

/// Why a request went to its pool. The names are stable: metrics and the
/// debug header use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No affinity cookie: weighted pick, cookie issued.
    New,
    /// The affinity cookie names a configured pool (even one with weight 0).
    Sticky,
    /// The affinity cookie names no configured pool (removed, garbage):
    /// weighted pick, cookie rewritten.
    Reassigned,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::Sticky => "sticky",
            Reason::Reassigned => "reassigned",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into `Config::pools`.
    pub pool: usize,
    pub reason: Reason,
    /// Whether the response carries a Set-Cookie pinning the user to `pool`.
    pub set_cookie: bool,
}

/// Decides for one request. `cookie_headers` are the values of every Cookie
/// header of the request, as bytes.
///
/// Affinity: the first affinity-cookie value (across all Cookie headers, in
/// order) that names a configured pool wins; browsers send the most specific
/// path first. If affinity cookies are present but none names a pool, the
/// user is reassigned.
pub fn decide<'a, R: Rng + ?Sized>(
    config: &Config,
    cookie_headers: impl IntoIterator<Item = &'a [u8]>,
    rng: &mut R,
) -> Decision {
    let name = config.cookie.name.as_bytes();
    let mut seen_affinity_cookie = false;
    for header in cookie_headers {
        for value in cookie::values(header, name) {
            seen_affinity_cookie = true;
            if let Some(pool) = config.pool_by_name(value) {
                return Decision {
                    pool,
                    reason: Reason::Sticky,
                    set_cookie: false,
                };
            }
        }
    }
    Decision {
        pool: config.pick(rng.next_u64()),
        reason: if seen_affinity_cookie {
            Reason::Reassigned
        } else {
            Reason::New
        },
        set_cookie: true,
    }
}
