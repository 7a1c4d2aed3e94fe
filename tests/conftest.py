"""Integration tests run the built module in a real Envoy (see docs/testing.md).
Fixtures only; shared helpers are in helpers.py."""

import os

import pytest

from stickysplit import envoy

# The docker suite runs on its own (scripts/test runs it when a Docker daemon
# answers): STICKY_SPLIT_DOCKER=1 pytest tests/docker
collect_ignore = [] if os.environ.get("STICKY_SPLIT_DOCKER") == "1" else ["docker"]


def pytest_sessionstart(session):
    if not envoy.WASM.exists():
        raise pytest.UsageError(f"{envoy.WASM} is missing: run scripts/build (scripts/test does)")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("envoy")


@pytest.fixture(scope="session")
def base_config():
    return envoy.load()
