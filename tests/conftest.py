"""Integration tests run the built module in a real Envoy (see README).
Fixtures only; shared helpers are in helpers.py."""

import pytest

from stickysplit import envoy


def pytest_sessionstart(session):
    if not envoy.WASM.exists():
        raise pytest.UsageError(f"{envoy.WASM} is missing: run scripts/build (scripts/test does)")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("envoy")


@pytest.fixture(scope="session")
def base_config():
    return envoy.load()
