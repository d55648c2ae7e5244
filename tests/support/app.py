"""The service in-process, with settings of the test's choosing, and its metrics."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from kiusys_app.config import get_settings
from kiusys_app.main import app


@contextmanager
def started_app(patch: pytest.MonkeyPatch, env: Mapping[str, str]) -> Iterator[TestClient]:
    """The app with `env` set, its lifespan running; the cached settings are read afresh."""
    for name, value in env.items():
        patch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with TestClient(app) as client:
            yield client
    finally:
        get_settings.cache_clear()


def metric(name: str, **labels: str) -> float:
    """A sample's value in this process's registry; 0 before it was first touched."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
