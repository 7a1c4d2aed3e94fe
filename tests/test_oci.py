"""The OCI image written without docker: a valid image layout whose digests
and media types agree, holding a plugin.wasm byte-identical to the build."""

import gzip
import hashlib
import io
import json
import tarfile

from stickysplit import envoy
from stickysplit import oci


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(layout, digest):
    return (layout / "blobs/sha256" / digest.split(":", 1)[1]).read_bytes()


def test_image_layout_is_consistent_and_holds_the_module(tmp_path):
    layout = tmp_path / "img"
    d = oci.build(envoy.WASM, layout, tag="v1")
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    [desc] = index["manifests"]
    assert desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    manifest_bytes = blob(layout, desc["digest"])
    assert (sha(manifest_bytes), len(manifest_bytes)) == (desc["digest"], desc["size"]) == (d["manifest"], desc["size"])
    manifest = json.loads(manifest_bytes)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"] == {"module.wasm.image/variant": "compat"}
    config_bytes = blob(layout, manifest["config"]["digest"])
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert (sha(config_bytes), len(config_bytes)) == (manifest["config"]["digest"], manifest["config"]["size"])
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    layer_bytes = blob(layout, layer["digest"])
    assert (sha(layer_bytes), len(layer_bytes)) == (layer["digest"], layer["size"])
    tar_bytes = gzip.decompress(layer_bytes)
    config = json.loads(config_bytes)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha(tar_bytes)]}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"]
        module = tar.extractfile(members[0]).read()
    assert module == envoy.WASM.read_bytes(), "plugin.wasm must be the built module, byte for byte"
    assert module[:4] == b"\0asm"
    # every blob in the layout is referenced, none missing
    assert {p.name for p in (layout / "blobs/sha256").iterdir()} == {
        x.split(":", 1)[1] for x in (desc["digest"], manifest["config"]["digest"], layer["digest"])
    }


def test_the_image_is_reproducible(tmp_path):
    a = oci.build(envoy.WASM, tmp_path / "a")
    b = oci.build(envoy.WASM, tmp_path / "b")
    assert a == b
    oci.archive(tmp_path / "a", tmp_path / "a.tar")
    oci.archive(tmp_path / "b", tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as t:
        assert {"oci-layout", "index.json"} <= set(t.getnames())


def test_a_different_module_changes_the_digest(tmp_path):
    other = tmp_path / "other.wasm"
    other.write_bytes(envoy.WASM.read_bytes() + b"\0")
    assert oci.build(other, tmp_path / "x")["manifest"] != oci.build(envoy.WASM, tmp_path / "y")["manifest"]


def test_pin_writes_digest_and_tag(tmp_path):
    wp = tmp_path / "wp.yaml"
    wp.write_text("spec:\n  url: oci://ghcr.io/example/sticky-split:0.1.0\n  sha256: " + "0" * 64 + "\n  phase: X\n")
    oci.pin([wp], "a" * 64, "0.2.0")
    assert wp.read_text() == "spec:\n  url: oci://ghcr.io/example/sticky-split:0.2.0\n  sha256: " + "a" * 64 + "\n  phase: X\n"
