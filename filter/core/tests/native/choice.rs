//! Pool choice: the weighted pick's interval arithmetic and the rendezvous
//! hash's fixed values and properties.

use sticky_split_core::choice::{key_hash, mix, Rendezvous, WeightedPicker};

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

// computed independently (Python, same definitions)
const GOLDEN_KEY_HASH: u64 = 17_396_716_259_063_309_781;
const GOLDEN_PICKS: [usize; 24] = [
    0, 0, 0, 2, 0, 0, 0, 1, 2, 2, 2, 0, 2, 2, 0, 2, 0, 1, 1, 1, 1, 1, 1, 0,
];

fn ring(weights: &[(&'static str, u32)]) -> Rendezvous {
    Rendezvous::new(weights.iter().copied()).unwrap()
}

/// Replicas (and successive releases) agree only if these never change.
#[test]
fn golden_values() {
    assert_eq!(mix(0), 0xe220_a839_7b1d_cdaf);
    assert_eq!(key_hash(b"user-1"), GOLDEN_KEY_HASH);
    let r = ring(&[("pool1", 50), ("pool2", 30), ("pool3", 20)]);
    let picks: Vec<usize> = (0..24)
        .map(|i| r.pick(key_hash(format!("user-{i}").as_bytes())))
        .collect();
    assert_eq!(picks, GOLDEN_PICKS);
}

#[test]
fn zero_weights_never_win_and_all_zero_is_refused() {
    assert!(Rendezvous::new([("a", 0), ("b", 0)]).is_none());
    let r = ring(&[("a", 0), ("b", 1), ("c", 0)]);
    for k in 0..10_000u64 {
        assert_eq!(r.pick(mix(k)), 1);
    }
}
