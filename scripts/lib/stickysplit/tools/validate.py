"""Checks a live sticky-split gateway: the split of new users against the
weights (chi-square test), then stickiness by replaying issued cookies."""

import argparse
import sys
import urllib.parse

from ..http import Client
from ..stats import ALPHA, split_verdict


def parse_weights(text):
    weights = {}
    for part in text.split(","):
        name, _, w = part.partition("=")
        if not name or not w.isdigit():
            raise argparse.ArgumentTypeError(f"expected pool=weight[,pool=weight...], got {part!r}")
        weights[name.strip()] = int(w)
    if sum(weights.values()) == 0:
        raise argparse.ArgumentTypeError("the weights sum to 0")
    return weights


def pool_of(resp, pool_header):
    """The pool that served a response: from `pool_header` (a plain pool name,
    or sticky-split's debug header `pool=<name>; reason=<reason>`), else the
    body, as the seed's curl script reads it."""
    if pool_header:
        value = resp.header(pool_header) or ""
        if value.startswith("pool="):
            return value.split(";", 1)[0][len("pool="):]
        return value
    return resp.body.decode(errors="replace").strip()


def run(url, weights, n, cookie_name, alpha, replay_users, replay_requests, pool_header, out=sys.stdout):
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    pools = list(weights)
    counts = {p: 0 for p in pools}
    other = {}
    issued = []  # (pool, cookie value) for replay
    failures = []

    print(f"Split: {n} new users (no cookie, a new connection each) -> {url}", file=out)
    for i in range(n):
        r = Client(port, host=host, keepalive=False).get(path)
        pool = pool_of(r, pool_header)
        if r.status != 200:
            failures.append(f"request {i}: HTTP {r.status}")
        if pool in counts:
            counts[pool] += 1
        else:
            other[pool] = other.get(pool, 0) + 1
        cookies = r.cookies_set(cookie_name)
        if len(cookies) != 1:
            failures.append(f"request {i}: expected one {cookie_name} Set-Cookie, got {len(cookies)}")
        elif len(issued) < replay_users:
            issued.append((pool, r.issued(cookie_name)))

    total_w = sum(weights.values())
    print(f"  {'pool':<16}{'weight':>8}{'expected':>10}{'observed':>10}{'share':>9}", file=out)
    for p in pools:
        print(
            f"  {p:<16}{weights[p]:>8}{100 * weights[p] / total_w:>9.1f}%{counts[p]:>10}{100 * counts[p] / n:>8.1f}%",
            file=out,
        )
    for p, c in other.items():
        print(f"  {p!s:<16}{'-':>8}{'-':>10}{c:>10}{100 * c / n:>8.1f}%   (not a configured pool)", file=out)
    ok, stat, df, p = split_verdict([counts[p] for p in pools], [weights[p] for p in pools], alpha)
    ok = ok and not other
    verdict = "PASS" if ok else "FAIL"
    print(
        f"  chi-square = {stat:.2f}, df = {df}, p = {p:.3g}; at alpha = {alpha:g}: {verdict}"
        + ("" if ok else " (the observed split is not consistent with the weights)"),
        file=out,
    )

    print(f"Stickiness: {len(issued)} users replay their cookie {replay_requests} times each", file=out)
    stayed = moved = reissued = 0
    with Client(port, host=host) as c:
        for pool, value in issued:
            for k in range(replay_requests):
                # like a browser with other cookies too, alternating one and two Cookie headers
                if k % 2:
                    headers = [("Cookie", "_ga=GA1.2.3; theme=dark"), ("Cookie", f"{cookie_name}={value}")]
                else:
                    headers = [("Cookie", f"theme=dark; {cookie_name}={value}; sid=42")]
                r = c.get(path, headers)
                if pool_of(r, pool_header) == pool:
                    stayed += 1
                else:
                    moved += 1
                if r.cookies_set(cookie_name):
                    reissued += 1
    total = stayed + moved
    sticky_ok = total > 0 and moved == 0 and reissued == 0
    print(
        f"  {stayed}/{total} requests stayed on their pool, {moved} moved, "
        f"{reissued} re-issued a cookie: {'PASS' if sticky_ok else 'FAIL'}",
        file=out,
    )
    for f in failures[:10]:
        print(f"  error: {f}", file=out)
    return ok and sticky_ok and not failures


def main(argv=None):
    ap = argparse.ArgumentParser(prog="validate-split", description=__doc__)
    ap.add_argument("url", help="the gateway URL, e.g. http://127.0.0.1:10000/")
    ap.add_argument("--weights", type=parse_weights, required=True, help="pool=weight,... as configured")
    ap.add_argument("-n", type=int, default=2000, help="new users to send (default 2000)")
    ap.add_argument("--cookie", default="sticky-split", help="the affinity cookie name (default sticky-split)")
    ap.add_argument("--alpha", type=float, default=ALPHA, help=f"significance of the split test (default {ALPHA:g})")
    ap.add_argument("--replay-users", type=int, default=100, help="users whose cookie is replayed (default 100)")
    ap.add_argument("--replay", type=int, default=10, help="requests per replayed user (default 10)")
    ap.add_argument(
        "--pool-header",
        default="",
        help="response header naming the pool, e.g. the filter's debugHeader (default: the response body)",
    )
    a = ap.parse_args(argv)
    ok = run(a.url, a.weights, a.n, a.cookie, a.alpha, a.replay_users, a.replay, a.pool_header)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
