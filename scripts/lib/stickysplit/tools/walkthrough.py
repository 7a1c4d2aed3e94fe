"""A canary walk-through in a real Envoy: one population of users, in ramp
mode, through a series of canary weights; each phase is a gateway started
with that config (as a config push would give), and every user replays the
cookie they were issued at the start."""

import argparse
import sys

from .. import envoy
from ..http import Client
from ..stats import ALPHA, split_verdict

STABLE, CANARY = "pool1", "pool2"


class WalkFailed(Exception):
    """The gateway broke the ramp's promise: a new user got no cookie, or a
    returning ramp user was issued a new one."""


def ramp_plugin(base, canary, generation=None):
    plugin = envoy.plugin_config(base)
    plugin["affinity"] = "ramp"
    plugin["pools"][0]["weight"] = 100 - canary
    plugin["pools"][1]["weight"] = canary
    if generation:
        plugin["generation"] = generation
    return plugin


def walk(phases=(10, 50, 100, 0), users=3000, workdir=None, base=None, alpha=ALPHA):
    """Returns one row per phase: a dict of counts and verdicts."""
    base = base if base is not None else envoy.load()
    cookie_name = envoy.plugin_config(base)["cookie"]["name"]
    rows = []
    cookies = None
    previous = None
    for canary in phases:
        with envoy.Envoy(base=base, plugin=ramp_plugin(base, canary), workdir=workdir) as gw, Client(gw.gateway) as c:
            if cookies is None:
                cookies, placed = [], []
                for _ in range(users):
                    r = c.get("/")
                    value = r.issued(cookie_name)
                    if value is None:
                        raise WalkFailed(f"at {canary}%: a new user got no {cookie_name}: {r.all('set-cookie')}")
                    cookies.append(f"{cookie_name}={value}")
                    placed.append(r.served_by)
            else:
                placed = []
                for cookie in cookies:
                    r = c.get("/", [("Cookie", cookie)])
                    if r.cookies_set(cookie_name):
                        raise WalkFailed(f"at {canary}%: a ramp user was re-issued a cookie: {r.cookies_set(cookie_name)}")
                    placed.append(r.served_by)
        on_canary = placed.count(CANARY)
        ok, _, _, p = split_verdict([users - on_canary, on_canary], [100 - canary, canary], alpha)
        row = {"canary_weight": canary, "on_canary": on_canary, "users": users, "share_p": p, "share_ok": ok}
        if previous is not None:
            up = sum(1 for b, a in zip(previous, placed) if b == STABLE and a == CANARY)
            down = sum(1 for b, a in zip(previous, placed) if b == CANARY and a == STABLE)
            row.update(moved_to_canary=up, moved_to_stable=down, stable_before=previous.count(STABLE),
                       canary_before=previous.count(CANARY))
        rows.append(row)
        previous = placed
    return rows


def print_rows(rows, out=sys.stdout):
    print(f"{'canary weight':>14}{'users on canary':>18}{'share':>8}{'split test p':>14}"
          f"{'stable->canary':>16}{'canary->stable':>16}", file=out)
    for r in rows:
        moved_up = f"{r['moved_to_canary']}/{r['stable_before']}" if "moved_to_canary" in r else "-"
        moved_down = f"{r['moved_to_stable']}/{r['canary_before']}" if "moved_to_stable" in r else "-"
        print(f"{r['canary_weight']:>13}%{r['on_canary']:>18}{100 * r['on_canary'] / r['users']:>7.1f}%"
              f"{r['share_p']:>14.3g}{moved_up:>16}{moved_down:>16}", file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="canary-walkthrough", description=__doc__)
    ap.add_argument("--users", type=int, default=3000)
    ap.add_argument("--phases", default="10,50,100,0", help="canary weights in %%, in order")
    a = ap.parse_args(argv)
    phases = [int(x) for x in a.phases.split(",")]
    print(f"{a.users} users, ramp mode, canary weights {phases} (pool1 = stable, pool2 = canary)")
    rows = walk(phases, a.users, workdir=envoy.REPO / ".run")
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
