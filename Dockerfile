# An image of the same kind as scripts/package-oci writes, for those who build with
# docker or buildah (Istio's "compat" Wasm image: plugin.wasm in one layer).
#   scripts/build && docker build -t REGISTRY/sticky-split:TAG . && docker push REGISTRY/sticky-split:TAG
FROM scratch
COPY target/wasm32-wasip1/release/sticky_split.wasm ./plugin.wasm
