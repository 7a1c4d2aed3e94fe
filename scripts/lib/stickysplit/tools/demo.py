"""The demo: a real Envoy with the filter in front of two sample pools."""

import argparse
import sys

from .. import envoy
from ..stats import ALPHA
from . import validate


def main(argv=None):
    ap = argparse.ArgumentParser(prog="demo")
    ap.add_argument("-n", type=int, default=2000, help="new users to send (default 2000)")
    ap.add_argument("--serve", action="store_true", help="keep Envoy serving after the checks (Ctrl-C stops)")
    a = ap.parse_args(argv)

    base = envoy.load()
    plugin = envoy.plugin_config(base)
    weights = {p["name"]: p["weight"] for p in plugin["pools"]}
    cookie = plugin["cookie"]["name"]
    gw = envoy.Envoy(base=base, fixed_ports=True, workdir=envoy.REPO / ".run")
    gw.workdir.mkdir(exist_ok=True)
    print(f"Starting {envoy.envoy_bin()} with envoy-test/envoy.yaml (log: {gw.log_path.relative_to(envoy.REPO)})")
    try:
        gw.start()
    except (RuntimeError, OSError) as e:
        print(f"error: Envoy did not start: {e}", file=sys.stderr)
        return 1
    try:
        url = f"http://127.0.0.1:{gw.gateway}/"
        print(f"Gateway {url}  pools {weights}  cookie {cookie!r}\n")
        ok = validate.run(url, weights, a.n, cookie, ALPHA, 100, 10, "x-served-by")
        print(f"\nDemo {'passed' if ok else 'FAILED'}.")
        if a.serve:
            print(
                f"\nEnvoy keeps serving (Ctrl-C to stop). Try:\n"
                f"  curl -si {url}\n"
                f"  curl -si -H 'Cookie: {cookie}=pool2' {url}\n"
                f"  admin: http://127.0.0.1:{gw.ports['admin']}/"
            )
            gw.serve_until_interrupted()
        return 0 if ok else 1
    finally:
        gw.stop()
        print("Envoy stopped.")


if __name__ == "__main__":
    sys.exit(main())
