"""The client is a package of its own: it installs alone into an empty venv, with httpx as its
one dependency, and imports nothing of the service."""

import ast
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PACKAGE = Path(__file__).resolve().parents[2] / "kiusys-client"


def test_the_client_imports_nothing_but_the_standard_library_httpx_and_itself() -> None:
    allowed = {*sys.stdlib_module_names, "httpx", "kiusys_client"}
    for module in sorted((PACKAGE / "kiusys_client").glob("*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            assert {name.split(".")[0] for name in names} <= allowed, f"{module.name}: {names}"


def test_the_client_installs_alone_and_its_command_runs(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    subprocess.run(
        [bin_dir / "pip", "install", "--quiet", "--disable-pip-version-check", str(PACKAGE)],
        check=True,
        timeout=300,
    )
    shown = subprocess.run(
        [bin_dir / "kiusys", "--help"], capture_output=True, text=True, check=True, timeout=60
    )
    assert "record" in shown.stdout
    installed = subprocess.run(
        [bin_dir / "python", "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert "kiusys-client" in names
    assert "httpx" in names
    assert not names & {"kiusys-app", "fastapi", "aiohttp", "boto3"}
    typed = subprocess.run(
        [bin_dir / "python", "-c", "import kiusys_client, pathlib; "
         "print((pathlib.Path(kiusys_client.__file__).parent / 'py.typed').exists())"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert typed.stdout == "True\n", "the package ships py.typed, so mypy users see its types"
