//! Weighted rendezvous hashing: a deterministic, weighted choice of pool for
//! a key, the same on every gateway replica, that moves as few keys as
//! possible when weights change.
//!
//! Each pool scores a key as `weight / -ln(u)`, with `u` in (0, 1) a hash of
//! the key and the pool's name; the highest score wins. For a fixed key,
//! raising one pool's weight raises only that pool's score, so keys can only
//! move into it; lowering it can only move keys out of it. Pools are
//! identified by name, so adding or removing a pool leaves the others'
//! scores as they were. Weight 0 scores 0 and never wins.

/// 64-bit FNV-1a followed by the SplitMix64 finalizer: fixed (not seeded per
/// process), so every replica computes the same value.
pub fn key_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// The SplitMix64 finalizer: a bijection on u64 with full avalanche.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
pub struct Rendezvous {
    /// (pool index, per-pool seed, weight) for pools with weight > 0.
    live: Vec<(usize, u64, f64)>,
}

impl Rendezvous {
    /// `pools`: (name, weight) in config order. `None` if no weight is above 0.
    pub fn new<'a>(pools: impl IntoIterator<Item = (&'a str, u32)>) -> Option<Self> {
        let live: Vec<(usize, u64, f64)> = pools
            .into_iter()
            .enumerate()
            .filter(|(_, (_, w))| *w > 0)
            .map(|(i, (name, w))| (i, key_hash(name.as_bytes()), f64::from(w)))
            .collect();
        (!live.is_empty()).then_some(Rendezvous { live })
    }

    /// The pool for a key hash (from [`key_hash`]).
    pub fn pick(&self, key: u64) -> usize {
        self.pick_where(key, |_| true).unwrap_or(0)
    }

    /// The pool for a key hash among the pools `allowed` accepts: the one
    /// the key ranks highest. Taking a pool out moves only its own keys.
    pub fn pick_where(&self, key: u64, allowed: impl Fn(usize) -> bool) -> Option<usize> {
        let mut best: Option<(f64, usize)> = None;
        for &(index, seed, weight) in self.live.iter().filter(|(i, _, _)| allowed(*i)) {
            // 53 random bits, centred in their interval: u in (0, 1), never 0 or 1
            let u = ((mix(key ^ seed) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = weight / -u.ln();
            if best.is_none_or(|(top, _)| score > top) {
                best = Some((score, index));
            }
        }
        best.map(|(_, index)| index)
    }
}
