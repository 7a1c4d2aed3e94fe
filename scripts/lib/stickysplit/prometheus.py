"""A real Prometheus server (the Debian package `prometheus`, installed by
scripts/install-prometheus) that scrapes Envoys' /stats/prometheus, and its
HTTP query API. tests/test_prometheus.py runs the dashboard's and the
rollout templates' queries through it."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from . import envoy
from .proc import run


def binary():
    """$PROMETHEUS_BIN if set, else `prometheus` on the PATH: its path, or
    None when that is not an executable."""
    return shutil.which(os.environ.get("PROMETHEUS_BIN") or "prometheus")


def version(path=None):
    """The first line of `prometheus --version`."""
    out = run([path or binary(), "--version"], timeout=30)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def free_port():
    """A loopback port nothing listens on right now. Prometheus cannot be
    asked for port 0 and tell which port it got, so the port is chosen here
    and Server.start tries again with another one if it was taken meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    pass


class Server:
    """One Prometheus process scraping `jobs` ({job name: (targets, extra
    target labels)}: each target a host:port serving /stats/prometheus)
    every `scrape_interval`, its data in a temporary directory of its own.
    Use as a context manager."""

    def __init__(self, jobs, workdir=None, scrape_interval="1s", attempts=5):
        self.jobs = jobs
        self.scrape_interval = scrape_interval
        self.attempts = attempts
        self.workdir = Path(tempfile.mkdtemp(prefix="prometheus-", dir=workdir))
        self.proc = None
        self.port = None
        self.log_path = self.workdir / "prometheus.log"

    def config(self):
        return {
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval},
            "scrape_configs": [
                {"job_name": job, "metrics_path": "/stats/prometheus",
                 "static_configs": [{"targets": list(targets), "labels": dict(labels)}]}
                for job, (targets, labels) in self.jobs.items()],
        }

    def start(self, timeout=30):
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config()))
        for attempt in range(self.attempts):
            try:
                self._start_once(config, free_port(), timeout)
                return self
            except PortTaken:
                if attempt == self.attempts - 1:
                    raise
        return self

    def _start_once(self, config, port, timeout):
        data = self.workdir / f"data-{port}"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [binary(), f"--config.file={config}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=info"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.port = port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                text = self.log_text()
                if "address already in use" in text:
                    raise PortTaken(f"port {port} was taken")
                raise RuntimeError(f"prometheus exited with {code}:\n{text[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass  # not listening yet
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {timeout}s:\n{self.log_text()[-3000:]}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def api(self, path, **params):
        """GET /api/v1/<path>; the `data` of a successful answer, else RuntimeError with Prometheus's error."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr, at=None):
        """An instant query, at time `at` (Unix seconds) or now: the API's
        data ({"resultType", "result"})."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", **params)

    def query_range(self, expr, start, end, step):
        return self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step)

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout=15):
        envoy.reap(self.proc, timeout)
        self.proc = None

    def __enter__(self):
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc):
        self.stop()


def samples(data):
    """{frozenset of (label, value) pairs: value} of an instant vector
    result, the values as floats."""
    if data["resultType"] == "scalar":
        return {frozenset(): float(data["result"][1])}
    assert data["resultType"] == "vector", data["resultType"]
    return {frozenset(s["metric"].items()): float(s["value"][1]) for s in data["result"]}
