//! Weighted choice of a pool from one uniform random draw.

/// Cumulative weights; a draw lands in the pool whose interval contains it.
/// Pools with weight 0 have empty intervals and are never picked.
#[derive(Debug, Clone)]
pub struct WeightedPicker {
    cumulative: Vec<u64>,
    total: u64,
}

impl WeightedPicker {
    /// `None` when the weights sum to 0 (nothing could ever be picked).
    pub fn new(weights: impl IntoIterator<Item = u32>) -> Option<Self> {
        let mut total = 0u64;
        let cumulative: Vec<u64> = weights
            .into_iter()
            .map(|w| {
                total += u64::from(w);
                total
            })
            .collect();
        (total > 0).then_some(WeightedPicker { cumulative, total })
    }

    /// Maps a uniform 64-bit draw onto `[0, total)` by a widening multiply
    /// (Lemire's method without the rejection step: with totals below 2^42
    /// the bias is under 2^-22 of a pool's share, far below what any split
    /// test can see), then finds the pool by binary search.
    pub fn pick(&self, draw: u64) -> usize {
        let point = ((u128::from(draw) * u128::from(self.total)) >> 64) as u64;
        let index = self.cumulative.partition_point(|&c| c <= point);
        index.min(self.cumulative.len().saturating_sub(1))
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}
