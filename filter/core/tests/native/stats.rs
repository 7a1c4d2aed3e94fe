//! Chi-square goodness of fit, for tests that check a split as a statistic.

/// Pearson's statistic for observed counts against expected proportions
/// (weights, any scale). Categories with weight 0 must have 0 observations
/// (returned as infinity otherwise) and add no degree of freedom.
pub fn chi_square(observed: &[u64], weights: &[u64]) -> (f64, usize) {
    let n: u64 = observed.iter().sum();
    let total: u64 = weights.iter().sum();
    let mut stat = 0.0;
    let mut categories = 0;
    for (&o, &w) in observed.iter().zip(weights) {
        if w == 0 {
            if o != 0 {
                return (f64::INFINITY, 1);
            }
            continue;
        }
        categories += 1;
        let e = n as f64 * w as f64 / total as f64;
        stat += (o as f64 - e).powi(2) / e;
    }
    (stat, categories.max(2) - 1)
}

/// Upper tail P(X >= x) of the chi-square distribution with `df` degrees of
/// freedom: the regularized upper incomplete gamma Q(df/2, x/2).
pub fn chi_square_sf(x: f64, df: usize) -> f64 {
    if x.is_infinite() {
        return 0.0;
    }
    gamma_q(df as f64 / 2.0, x / 2.0)
}

fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < a + 1.0 {
        // series for P, then Q = 1 - P
        let mut sum = 1.0 / a;
        let mut term = sum;
        let mut n = a;
        for _ in 0..10_000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        1.0 - sum * (-x + a * x.ln() - ln_gamma(a)).exp()
    } else {
        // Lentz's continued fraction for Q
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (-x + a * x.ln() - ln_gamma(a)).exp() * h
    }
}

/// Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for a > 0.
fn ln_gamma(a: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = a - 1.0;
    let t = x + 7.5;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    /// Known quantiles: the 5% and 1e-6 critical values and closed forms.
    #[test]
    fn survival_function_matches_tables() {
        assert!(close(chi_square_sf(3.841_458_820_694_124, 1), 0.05, 1e-9));
        assert!(close(chi_square_sf(5.991_464_547_107_979, 2), 0.05, 1e-9));
        assert!(close(chi_square_sf(23.928_12, 1), 1e-6, 1e-4));
        for x in [0.5, 2.0, 10.0, 40.0] {
            // df = 2 is exp(-x/2)
            assert!(close(chi_square_sf(x, 2), (-x / 2.0).exp(), 1e-12), "x={x}");
        }
        assert_eq!(chi_square_sf(0.0, 3), 1.0);
    }

    #[test]
    fn statistic_and_degrees_of_freedom() {
        let (stat, df) = chi_square(&[80, 20], &[80, 20]);
        assert_eq!((stat, df), (0.0, 1));
        let (stat, df) = chi_square(&[90, 10, 0], &[8, 2, 0]);
        assert!(close(stat, 6.25, 1e-12));
        assert_eq!(df, 1);
        assert!(chi_square(&[99, 1], &[1, 0]).0.is_infinite());
    }
}
