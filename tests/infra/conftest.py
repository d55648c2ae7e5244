"""Shared fixtures for the Terraform suites."""

from pathlib import Path

import pytest

from tests.support.terraform import ROOTS, MirrorNotFound, find_provider_mirror


@pytest.fixture(scope="session")
def provider_mirror() -> Path:
    try:
        return find_provider_mirror()
    except MirrorNotFound as exc:
        pytest.fail(str(exc))


@pytest.fixture(params=ROOTS)
def root(request: pytest.FixtureRequest) -> str:
    return str(request.param)
