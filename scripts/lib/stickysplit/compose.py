"""The docker-compose stack of envoy-test/docker-compose.yaml, driven from
Python: `docker compose` (v2) where it exists, else `docker-compose` (v1),
a project name of its own, ports published on 127.0.0.1 of our choosing."""

import os
import shutil
import subprocess
import time
import urllib.request

from . import envoy
from .paths import REPO

COMPOSE_FILE = REPO / "envoy-test/docker-compose.yaml"


def daemon_answers():
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


def compose_command():
    """The compose CLI: ["docker", "compose"] (v2) or ["docker-compose"] (v1)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


class Stack:
    """`with Stack(image) as s:` brings the stack up and always tears it down."""

    def __init__(self, image, project=None):
        self.image = image
        self.project = project or f"sticky-split-test-{os.getpid()}"
        self.gateway_port, self.admin_port = envoy.free_ports(2)
        self.cli = compose_command()

    def compose(self, *args, check=True):
        env = dict(os.environ, ENVOY_IMAGE=self.image, GATEWAY_PORT=str(self.gateway_port),
                   ADMIN_PORT=str(self.admin_port))
        cmd = [*self.cli, "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout + proc.stderr

    def admin(self, path):
        return envoy.admin_get(self.admin_port, path)

    def wait_ready(self, seconds=60):
        """Until the gateway's Envoy is LIVE and has routed a request."""
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
