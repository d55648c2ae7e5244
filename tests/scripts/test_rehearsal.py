"""The rehearsal tooling: `make help`, and `make local-aws`'s apply, which retries an emulator
hiccup once and, on a failure that stays, stops what it started. Terraform is a stand-in here;
the e2e suite runs the real one through the same `Workspace.apply`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scripts.test_scripts import stub
from tests.support.processes import REPO_ROOT, Emulator
from tests.support.terraform import MIRROR_ENV, TerraformError, Workspace

HICCUP = "Error: creating EC2 Route: RouteAlreadyExists: The route identified by 0.0.0.0/0 exists"
CONFIG_ERROR = 'Error: Unsupported argument "nonsense"'


def test_make_help_prints_the_real_host_and_port() -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "help", "PORT=9123"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "http://127.0.0.1:9123" in result.stdout
    assert "$(" not in result.stdout


def fake_terraform(bin_dir: Path, calls: Path, failures: list[str]) -> None:
    """A terraform whose n-th `apply` fails with failures[n-1] (while there is one)."""
    script = "\n".join(
        [
            f'calls="{calls}"',
            'if [[ " $* " == *" apply "* ]]; then',
            '  echo apply >> "$calls"',
            '  n="$(wc -l < "$calls")"',
            *(
                f'  if [[ "$n" == {n} ]]; then echo "{failure}" >&2; exit 1; fi'
                for n, failure in enumerate(failures, start=1)
            ),
            "fi",
        ]
    )
    stub(bin_dir, "terraform", script)


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """An empty stand-in for the provider mirror: enough for the workspace to find one."""
    folder = tmp_path / "mirror"
    (folder / "registry.terraform.io" / "hashicorp" / "aws").mkdir(parents=True)
    return folder


@pytest.fixture
def workspace(tmp_path: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    return Workspace(tmp_path / "roots", Emulator("http://127.0.0.1:9"))


def applies(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_an_emulator_hiccup_is_retried_once(workspace: Workspace, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake_terraform(tmp_path / "bin", calls, [HICCUP])
    workspace.apply("dynamodb")
    assert applies(calls) == 2


def test_a_second_hiccup_fails(workspace: Workspace, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake_terraform(tmp_path / "bin", calls, [HICCUP, HICCUP])
    with pytest.raises(TerraformError, match="RouteAlreadyExists"):
        workspace.apply("dynamodb")
    assert applies(calls) == 2


def test_a_configuration_error_is_not_retried(workspace: Workspace, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake_terraform(tmp_path / "bin", calls, [CONFIG_ERROR])
    with pytest.raises(TerraformError, match="Unsupported argument"):
        workspace.apply("dynamodb")
    assert applies(calls) == 1


def processes_mentioning(text: str) -> list[int]:
    """The pids whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_local_aws_stops_what_it_started_when_an_apply_fails(tmp_path: Path, mirror: Path) -> None:
    fake_terraform(tmp_path / "bin", tmp_path / "calls", [CONFIG_ERROR])
    state = tmp_path / "local-aws"
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.local_aws", "up"],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
            MIRROR_ENV: str(mirror),
            "KIUSYS_LOCAL_AWS_DIR": str(state),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "local-aws failed at s3-backends, so it stopped the emulator it started" in result.stderr
    assert not state.exists(), "its files are gone, so the next `make local-aws` may start"
    assert not processes_mentioning(str(state)), "the emulator is stopped"
    retry = subprocess.run(
        [sys.executable, "-m", "tests.support.local_aws", "down"],
        cwd=REPO_ROOT,
        env={**os.environ, "KIUSYS_LOCAL_AWS_DIR": str(state)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "stopped" in retry.stdout
