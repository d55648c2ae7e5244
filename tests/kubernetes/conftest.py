"""The rendered manifests, and the facts other parts of the repo state about them."""

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.processes import REPO_ROOT
from tests.support.terraform import load_hcl

Manifest = dict[str, Any]


def render(directory: Path) -> list[Manifest]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def variable_default(root: str, name: str) -> Any:
    variables = load_hcl(REPO_ROOT / root / "variables.tf")["variable"]
    (body,) = [block[name] for block in variables if name in block]
    return body["default"]


@pytest.fixture(scope="session")
def rendered() -> list[Manifest]:
    return render(REPO_ROOT / "kubernetes")


@pytest.fixture(scope="session")
def kubernetes_minor() -> str:
    return str(variable_default("eks-cluster", "kubernetes_version"))


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    (match,) = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return match
