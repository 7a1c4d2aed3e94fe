"""The module as an OCI image for Istio's WasmPlugin and Envoy Gateway's
Image code, without docker: building the image layout (scripts/package-oci,
the tests' images) and reading it back as a registry stand-in does (the
Istio agent and Envoy Gateway's Wasm cache of the tests). One module, so
that the writer and the readers agree on the layout.

The image follows the *compat* variant of the Wasm image specification that
Istio's WasmPlugin accepts (`oci://` URLs): one gzip'd tar layer holding
`plugin.wasm`, a standard OCI image config and manifest, and the annotation
`module.wasm.image/variant: compat`. Standard registries and tools take it:
`skopeo copy oci:target/oci/sticky-split:<tag> docker://REGISTRY/sticky-split:<tag>`,
`crane push`, `oras cp --from-oci-layout`.

The output is reproducible: fixed timestamps and ownership, so the same
module always gives the same digests.
"""

import gzip
import hashlib
import io
import json
import re
import tarfile
import time
from pathlib import Path

from .paths import WASM

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
VARIANT = {"module.wasm.image/variant": "compat"}


class FetchFailed(Exception):
    """A stand-in for a puller (istio-agent, Envoy Gateway's Wasm cache)
    could not get the module, or its digest did not match."""


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


def build_layout(workdir, module=WASM):
    """scripts/package-oci's image of `module` in a new folder of `workdir`:
    (the layout's path, the image digest in hex)."""
    out = Path(workdir) / f"oci-{time.monotonic_ns()}"
    digests = build(module, out, tag="test")
    return out, digests["manifest"].split(":", 1)[1]


def _blob(layout, digest):
    return (Path(layout) / "blobs/sha256" / digest.split(":", 1)[1]).read_bytes()


def image_digest(layout):
    """The digest (`sha256:...`) of the one image in `layout`."""
    index = json.loads((Path(layout) / "index.json").read_text())
    return index["manifests"][0]["digest"]


def plugin_wasm(layout):
    """The bytes of `plugin.wasm` in the image of `layout`, as a puller
    unwraps it: index, manifest, first layer (gzip'd tar). Not checked to be
    Wasm: each caller refuses a non-Wasm module in its own words."""
    manifest = json.loads(_blob(layout, image_digest(layout)))
    layer = gzip.decompress(_blob(layout, manifest["layers"][0]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return tar.extractfile("plugin.wasm").read()
