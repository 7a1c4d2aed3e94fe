"""The demo and test gateway of envoy-test/envoy.yaml as the tests and tools
see it: the names its plugin config sets, the ports it binds when run as
written (the demo's; tests move them, see envoy.Envoy), and where its route
table is. tests/test_configs.py checks these against the YAML files."""

# The affinity cookie of envoy.yaml, envoy-compose.yaml and the benchmarks.
COOKIE = "nginx-app-subset"
ROUTE_HEADER = "x-sticky-split-pool"
CLUSTER_HEADER = "x-sticky-split-cluster"
# Not set in envoy.yaml: tests that read the decision turn it on.
DEBUG_HEADER = "x-sticky-split-debug"

# envoy.yaml's listeners and admin; envoy-compose.yaml's gateway and admin
# listen on the same two ports inside their container.
PORTS = {"gateway": 10000, "backend-pool1": 10001, "backend-pool2": 10002, "admin": 9901}


def listener(config, name="gateway"):
    """The listener called `name` in an Envoy bootstrap."""
    return next(l for l in config["static_resources"]["listeners"] if l["name"] == name)


def connection_manager(config, name="gateway"):
    """The HTTP connection manager's config of listener `name`."""
    return listener(config, name)["filter_chains"][0]["filters"][0]["typed_config"]


def routes(config, name="gateway"):
    """The route list of listener `name`'s (first) virtual host: editing it edits `config`."""
    return connection_manager(config, name)["route_config"]["virtual_hosts"][0]["routes"]


def add_pool_route(config, pool, cluster):
    """A route for `pool` on the route header, to `cluster`, before the
    gateway's last (fallback) route."""
    routes(config).insert(-1, {"match": {"prefix": "/", "headers": [
        {"name": ROUTE_HEADER, "string_match": {"exact": pool}}]}, "route": {"cluster": cluster}})
