"""Packages the module as an OCI image for Istio's WasmPlugin, without docker.

scripts/package-oci's command line; the image itself (its layout, media
types, reproducibility) is stickysplit.oci, shared with the tests' readers.
"""

import argparse
import os
import sys
from pathlib import Path

from .. import envoy
from ..oci import archive, build, pin


def main(argv=None):
    ap = argparse.ArgumentParser(prog="package-oci", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tag", default=os.environ.get("TAG", "latest"))
    ap.add_argument("--out", default=str(envoy.REPO / "target/oci"))
    ap.add_argument("--pin", nargs="*", default=[], metavar="WASMPLUGIN_YAML",
                    help="write the image digest and tag into these WasmPlugin manifests")
    a = ap.parse_args(argv)
    layout = Path(a.out) / "sticky-split"
    if layout.exists():
        for p in sorted(layout.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    d = build(envoy.WASM, layout, tag=a.tag)
    tar_path = Path(a.out) / "sticky-split-oci.tar"
    archive(layout, tar_path)
    print(f"OCI image layout: {layout} (tag {a.tag}; archive {tar_path})")
    print(f"  module  {d['module']}  ({d['module_size']} bytes)")
    print(f"  layer   {d['layer']}")
    print(f"  image   {d['manifest']}   <- the image digest")
    print("WasmPlugin:")
    print(f"  url: oci://REGISTRY/sticky-split:{a.tag}")
    print(f"  sha256: {d['manifest'].split(':', 1)[1]}")
    if a.pin:
        pin(a.pin, d["manifest"].split(":", 1)[1], a.tag)
        print(f"Pinned in: {', '.join(a.pin)}")
    print("Push (any of):")
    print(f"  skopeo copy oci:{layout}:{a.tag} docker://REGISTRY/sticky-split:{a.tag}")
    print(f"  oras cp --from-oci-layout {layout}:{a.tag} REGISTRY/sticky-split:{a.tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
