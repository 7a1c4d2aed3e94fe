"""The docker-compose stack of envoy-test/docker-compose.yaml, driven from
Python: `docker compose` (v2) where it exists, else `docker-compose` (v1),
a project name of its own, the gateway and its admin published on ports of
127.0.0.1 that Docker picks (GATEWAY_PORT=0, ADMIN_PORT=0) and that are read
back after every start."""

import os
import shutil
import time
import urllib.request

from . import envoy, metrics
from .paths import REPO
from .proc import run
from .testbed import PORTS

COMPOSE_FILE = REPO / "envoy-test/docker-compose.yaml"


def daemon_answers():
    return shutil.which("docker") is not None and run(["docker", "info"], timeout=60).returncode == 0


def compose_command():
    """The compose CLI: ["docker", "compose"] (v2) or ["docker-compose"] (v1)."""
    if run(["docker", "compose", "version"], timeout=60).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


class Stack:
    """`with Stack(image) as s:` brings the stack up and always tears it down."""

    def __init__(self, image, project=None):
        self.image = image
        self.project = project or f"sticky-split-test-{os.getpid()}"
        self.gateway_port = self.admin_port = None
        self.cli = compose_command()

    def _run(self, args, check=True):
        env = dict(os.environ, ENVOY_IMAGE=self.image, GATEWAY_PORT="0", ADMIN_PORT="0")
        cmd = [*self.cli, "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        proc = run(cmd, timeout=300, env=env)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def compose(self, *args, check=True):
        proc = self._run(args, check)
        return proc.stdout + proc.stderr

    def published(self, container_port):
        """The 127.0.0.1 port the gateway's `container_port` is published on
        (Docker picks a new one each time the container starts)."""
        return int(self._run(["port", "gateway", str(container_port)]).stdout.strip().rsplit(":", 1)[1])

    def admin(self, path):
        return envoy.admin_get(self.admin_port, path)

    def metric(self, name, *labels):
        """The filter's metric `name` as Prometheus scrapes it: see metrics.series."""
        return metrics.series(self.admin("/stats/prometheus"), name, *labels)

    def wait_all_counted(self):
        envoy.wait_all_counted(self.admin_port)

    def wait_ready(self, seconds=60):
        """Until the gateway's Envoy is LIVE and has routed a request, on the
        ports it is published on now."""
        self.gateway_port, self.admin_port = self.published(PORTS["gateway"]), self.published(PORTS["admin"])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if self.admin("/ready").strip() == "LIVE":
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.gateway_port}/", timeout=5) as r:
                        if r.status == 200:
                            return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the stack is not ready after {seconds}s:\n{self.compose('logs', '--tail', '30')}")

    def up(self):
        self.compose("up", "-d")
        self.wait_ready()
        return self

    def down(self):
        self.compose("down", "--timeout", "5", check=False)

    def __enter__(self):
        try:
            return self.up()
        except Exception:
            self.down()
            raise

    def __exit__(self, *exc):
        self.down()
