"""Packages the module as an OCI image for Istio's WasmPlugin, without docker.

The image follows the *compat* variant of the Wasm image specification that
Istio's WasmPlugin accepts (`oci://` URLs): one gzip'd tar layer holding
`plugin.wasm`, a standard OCI image config and manifest, and the annotation
`module.wasm.image/variant: compat`. Standard registries and tools take it:
`skopeo copy oci:target/oci/sticky-split:<tag> docker://REGISTRY/sticky-split:<tag>`,
`crane push`, `oras cp --from-oci-layout`.

The output is reproducible: fixed timestamps and ownership, so the same
module always gives the same digests.
"""

import argparse
import gzip
import re
import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path

from .. import envoy

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
VARIANT = {"module.wasm.image/variant": "compat"}


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(module):
    """An uncompressed tar with one entry, plugin.wasm, with fixed metadata."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("plugin.wasm")
        info.size, info.mode, info.mtime, info.uid, info.gid = len(module), 0o444, 0, 0, 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(module))
    return buf.getvalue()


def build(module_path, out_dir, tag="latest", created="1970-01-01T00:00:00Z"):
    """Writes an OCI image layout to `out_dir`; returns a dict of digests."""
    module = Path(module_path).read_bytes()
    tar = layer_tar(module)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, filename="") as f:
        f.write(tar)
    layer = gz.getvalue()
    config = json.dumps(
        {
            "created": created,
            "architecture": "wasm",
            "os": "wasip1",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_digest(tar)]},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": _digest(layer), "size": len(layer)}],
            "annotations": VARIANT,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": MANIFEST,
                "digest": _digest(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    out = Path(out_dir)
    blobs = out / "blobs/sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in (layer, config, manifest):
        (blobs / _digest(blob).split(":", 1)[1]).write_bytes(blob)
    (out / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return {
        "manifest": _digest(manifest),
        "module": _digest(module),
        "module_size": len(module),
        "layer": _digest(layer),
        "config": _digest(config),
    }


def archive(layout_dir, tar_path):
    """The layout as one tar (an `oci-archive:` for skopeo), reproducibly."""
    layout = Path(layout_dir)
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in layout.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(layout)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_file():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def pin(paths, digest, tag):
    """Writes the image digest (and tag) into WasmPlugin manifests, in place."""
    for path in paths:
        text = Path(path).read_text()
        text = re.sub(r"(?m)^(\s*sha256:\s*)[0-9a-f]{64}\s*$", lambda m: m.group(1) + digest, text)
        text = re.sub(r"(?m)^(\s*url:\s*oci://[^\s:@]+(?::\d+)?/[^\s:@]+):[^\s@]+\s*$",
                      lambda m: f"{m.group(1)}:{tag}", text)
        Path(path).write_text(text)


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
