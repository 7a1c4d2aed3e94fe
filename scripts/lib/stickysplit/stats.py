"""Chi-square goodness of fit, written out so the tools need no SciPy."""

import math

# The significance of every split test here: a correct split fails one run in
# a million, while the sample sizes used still catch a few points of skew.
ALPHA = 1e-6


def chi_square(observed, weights):
    """Pearson's statistic and degrees of freedom for counts against weights.

    Categories with weight 0 add no degree of freedom; any observation in one
    makes the statistic infinite (such a split is simply wrong).
    """
    n = sum(observed)
    total = sum(weights)
    stat = 0.0
    categories = 0
    for o, w in zip(observed, weights):
        if w == 0:
            if o:
                return math.inf, 1
            continue
        categories += 1
        e = n * w / total
        stat += (o - e) ** 2 / e
    return stat, max(categories, 2) - 1


def chi_square_sf(x, df):
    """P(X >= x) for X ~ chi-square(df): the regularized upper gamma Q(df/2, x/2)."""
    if math.isinf(x):
        return 0.0
    if x <= 0:
        return 1.0
    a, x = df / 2.0, x / 2.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def split_verdict(counts, weights, alpha):
    """(passed, stat, df, p) for observed counts per pool against weights."""
    stat, df = chi_square(counts, weights)
    p = chi_square_sf(stat, df)
    return p >= alpha, stat, df, p
