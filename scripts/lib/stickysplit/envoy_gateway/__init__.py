"""What Envoy Gateway hands its Envoy for an EnvoyExtensionPolicy's Wasm
extension, built here from the manifests, and an Envoy that takes it the way
an Envoy Gateway proxy does. One module per job, each readable alone:

- registry: Envoy Gateway's Wasm cache (pull an image or an HTTP module,
  check its sha256 and that it is Wasm);
- module_server: Envoy Gateway's Wasm HTTP server, where its proxies fetch
  the cached modules;
- routes: HTTPRoutes to Envoy routes (matches, order, rule clusters);
- scope: which policy covers which route rule;
- translate: the Wasm filters, listeners and route tables, as Envoy
  Gateway's translator builds them (and which release does what);
- proxy: the Envoy set up as an Envoy Gateway proxy, its start, stop and
  live updates.

The names the tests and tools use are imported here, so that
`from stickysplit import envoy_gateway as eg; eg.Registry` keeps working.
"""

from ..oci import FetchFailed
from .module_server import EG_NAMESPACE, EG_WASM_PORT, WASM_CLUSTER, ModuleServer
from .proxy import DRAIN_ARGS, EnvoyGatewayProxy, envoy_version, write_resources
from .registry import Registry, image_ref
from .routes import attached, listener_name, translate_routes
from .scope import policy_for, scope_level
from .translate import (EG_MAIN, EG_OF_ENVOY_LINE, FILTER_CONFIG, FILTER_PREFIX, api_server_json, build_wasms,
                        eg_for_envoy, filter_name, ir_name, translate, wasm_filter)

__all__ = [
    "DRAIN_ARGS", "EG_MAIN", "EG_NAMESPACE", "EG_OF_ENVOY_LINE", "EG_WASM_PORT", "FILTER_CONFIG", "FILTER_PREFIX",
    "WASM_CLUSTER", "EnvoyGatewayProxy", "FetchFailed", "ModuleServer", "Registry", "api_server_json", "attached",
    "build_wasms", "eg_for_envoy", "envoy_version", "filter_name", "image_ref", "ir_name", "listener_name",
    "policy_for", "scope_level", "translate", "translate_routes", "wasm_filter", "write_resources",
]
