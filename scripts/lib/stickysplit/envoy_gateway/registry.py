"""Envoy Gateway's Wasm cache, as far as sticky-split needs it: what it can
pull (the OCI layouts scripts/package-oci writes, and HTTP bodies) and the
checks it makes before it serves a module."""

import hashlib
from pathlib import Path

from ..oci import FetchFailed, image_digest, plugin_wasm


def image_ref(url):
    """An Image code URL as Envoy Gateway's cache keys it: `oci://` in
    front, `:latest` when it has neither a tag nor a digest."""
    ref = url if url.startswith("oci://") else f"oci://{url}"
    last = ref[len("oci://"):].rsplit("/", 1)[-1]
    if "@" not in ref and ":" not in last:
        ref += ":latest"
    return ref


class Registry:
    """What Envoy Gateway's Wasm cache can reach: OCI images (the layouts
    scripts/package-oci writes) by reference, and HTTP URLs by their body.
    fetch() does what the cache does for sticky-split: pulls, checks the
    policy's sha256 (the image digest for an image, the module's for HTTP),
    unwraps plugin.wasm, checks the Wasm magic; returns the module bytes."""

    def __init__(self, images=None, http=None):
        self.images = {image_ref(url): Path(layout) for url, layout in (images or {}).items()}
        self.http = dict(http or {})

    def fetch(self, code):
        if code["type"] == "Image":
            image = code["image"]
            ref = image_ref(image["url"])
            layout = self.images.get(ref)
            if layout is None:
                raise FetchFailed(f"{ref}: cannot pull the image (not in this registry)")
            digest = image_digest(layout)
            if image.get("sha256") and digest != f"sha256:{image['sha256']}":
                raise FetchFailed(f"{ref}: image digest {digest} is not image.sha256 {image['sha256']}")
            module = plugin_wasm(layout)
        else:
            url = code["http"]["url"]
            if url not in self.http:
                raise FetchFailed(f"{url}: cannot fetch")
            module = self.http[url]
            want = code["http"].get("sha256")
            if want and hashlib.sha256(module).hexdigest() != want:
                raise FetchFailed(f"{url}: sha256 of the module is not http.sha256 {want}")
        if module[:4] != b"\0asm":
            raise FetchFailed("the module is not Wasm (no \\0asm magic)")
        return module
