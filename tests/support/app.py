"""The service in-process, built from the test's own settings, and its metrics."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from kiusys_app.config import Settings
from kiusys_app.main import create_app


def sqlite_settings(directory: Path, **values: Any) -> Settings:
    """Settings with the embedded store's file in `directory` (and the store SQLite, unless
    `values` say otherwise)."""
    return Settings(**{"store": "sqlite", "sqlite_path": directory / "counts.sqlite3", **values})


@contextmanager
def started_app(settings: Settings, clock: Callable[[], float] = time.time) -> Iterator[TestClient]:
    """The app for `settings` (its store on `clock`), its lifespan running."""
    with TestClient(create_app(settings, clock)) as client:
        yield client


def metric(name: str, **labels: str) -> float:
    """A sample's value in this process's registry; 0 before it was first touched."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
