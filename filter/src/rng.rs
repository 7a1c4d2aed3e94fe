//! The per-VM pseudo-random generator: xoshiro256++ (Blackman and Vigna),
//! implemented against rand_core's traits and seeded from the host's entropy.
//!
//! Pool choice needs uniform, independent draws, not secrecy: the pool a new
//! user lands in is told to that user in the Set-Cookie anyway. One generator
//! per VM keeps the request path free of host calls for randomness.

use core::convert::Infallible;

use rand_core::{SeedableRng, TryRng};

#[derive(Debug, Clone)]
pub struct Xoshiro256pp {
    s: [u64; 4],
}

impl Xoshiro256pp {
    /// Seeds from `getrandom` (WASI `random_get` inside Envoy). If the host
    /// cannot supply entropy, falls back to `fallback_seed` (e.g. the time)
    /// and says so, rather than refusing to route.
    pub fn from_entropy_or(fallback_seed: u64) -> (Self, bool) {
        match Xoshiro256pp::try_from_rng(&mut getrandom::SysRng) {
            Ok(rng) => (rng, true),
            Err(_) => (Xoshiro256pp::seed_from_u64(fallback_seed), false),
        }
    }

    fn next(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.s;
        let result = s0.wrapping_add(*s3).rotate_left(23).wrapping_add(*s0);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }
}

impl SeedableRng for Xoshiro256pp {
    type Seed = [u8; 32];

    fn from_seed(seed: [u8; 32]) -> Self {
        let mut s = [0u64; 4];
        for (word, chunk) in s.iter_mut().zip(seed.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            *word = u64::from_le_bytes(bytes);
        }
        if s == [0; 4] {
            // The all-zero state is the one fixed point of xoshiro; leave it
            // through the documented SplitMix64 expansion of 0.
            return Xoshiro256pp::seed_from_u64(0);
        }
        Xoshiro256pp { s }
    }
}

impl TryRng for Xoshiro256pp {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(bytes) {
                *d = s;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    /// Reference output of xoshiro256++ for the state {1, 2, 3, 4}, from the
    /// authors' C implementation.
    #[test]
    fn matches_reference_sequence() {
        let mut rng = Xoshiro256pp { s: [1, 2, 3, 4] };
        let got: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [41943041, 58720359, 3588806011781223, 3591011842654386]
        );
    }

    #[test]
    fn zero_seed_is_not_stuck() {
        let mut rng = Xoshiro256pp::from_seed([0; 32]);
        assert_ne!(rng.next_u64(), rng.next_u64());
    }

    #[test]
    fn entropy_seeds_differ() {
        let (mut a, ok_a) = Xoshiro256pp::from_entropy_or(7);
        let (mut b, ok_b) = Xoshiro256pp::from_entropy_or(7);
        assert!(ok_a && ok_b);
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn fill_bytes_covers_odd_lengths() {
        let mut rng = Xoshiro256pp::seed_from_u64(9);
        let mut buf = [0u8; 13];
        rng.fill_bytes(&mut buf);
        assert!(buf[8..].iter().any(|&b| b != 0));
    }
}
