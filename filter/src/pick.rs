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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_total_is_refused() {
        assert!(WeightedPicker::new([0, 0]).is_none());
        assert!(WeightedPicker::new([]).is_none());
    }

    /// Draws spread evenly over the 64-bit range land in each pool exactly in
    /// proportion to its weight: this checks the interval arithmetic itself,
    /// with no randomness involved.
    #[test]
    fn even_draws_split_exactly_by_weight() {
        let cases: &[&[u32]] = &[
            &[80, 20],
            &[1, 1],
            &[0, 5, 0, 5],
            &[3, 0, 7],
            &[1],
            &[60, 40],
        ];
        for weights in cases {
            let picker = WeightedPicker::new(weights.iter().copied()).unwrap();
            let total = picker.total();
            let steps = 10_000 * total;
            let mut counts = vec![0u64; weights.len()];
            for k in 0..steps {
                // the midpoint of the k-th of `steps` equal slices of the u64 range
                let draw = ((u128::from(k) * 2 + 1) << 64) / (u128::from(steps) * 2);
                counts[picker.pick(draw as u64)] += 1;
            }
            let want: Vec<u64> = weights.iter().map(|&w| u64::from(w) * 10_000).collect();
            assert_eq!(counts, want, "weights {weights:?}");
        }
    }

    #[test]
    fn extreme_draws_stay_in_range() {
        let picker = WeightedPicker::new([0, 1, 0]).unwrap();
        assert_eq!(picker.pick(0), 1);
        assert_eq!(picker.pick(u64::MAX), 1);
        let picker = WeightedPicker::new([u32::MAX, u32::MAX]).unwrap();
        assert_eq!(picker.pick(0), 0);
        assert_eq!(picker.pick(u64::MAX), 1);
    }
}
