//! The per-VM pseudo-random generator: xoshiro256++ from `rand_xoshiro`,
//! seeded from the host's entropy.
//!
//! Pool choice needs uniform, independent draws, not secrecy: the pool a new
//! user lands in is told to that user in the Set-Cookie anyway. One generator
//! per VM keeps the request path free of host calls for randomness.

use rand_core::SeedableRng;

/// The generator every VM uses for new assignments.
pub type Prng = rand_xoshiro::Xoshiro256PlusPlus;

/// A generator seeded from `getrandom` (WASI `random_get` inside Envoy), and
/// `true`; if the host gives no entropy, one seeded from `fallback_seed` (the
/// glue passes the clock) and `false`, so the filter still routes and the
/// caller can say so.
pub fn seeded_or(fallback_seed: u64) -> (Prng, bool) {
    match Prng::try_from_rng(&mut getrandom::SysRng) {
        Ok(rng) => (rng, true),
        Err(_) => (Prng::seed_from_u64(fallback_seed), false),
    }
}
