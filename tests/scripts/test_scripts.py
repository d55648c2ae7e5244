"""The shell scripts and the Dockerfile: linted, and run against stand-ins for their tools."""

import functools
import hashlib
import http.server
import os
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubernetes.conftest import find, render, variable_default
from tests.support.processes import REPO_ROOT

BASH = shutil.which("bash") or "/bin/bash"
SCRIPTS = ["install_kubectl.sh", "terraform-docs.sh", "kubernetes/configure.sh", ".ci/run"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck_clean(script: str) -> None:
    result = subprocess.run(
        ["shellcheck", "--severity=style", str(REPO_ROOT / script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_strict_mode(script: str) -> None:
    text = (REPO_ROOT / script).read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -o errexit -o nounset -o pipefail" in text


def test_hadolint_clean() -> None:
    result = subprocess.run(
        ["hadolint", str(REPO_ROOT / "kiusys-app" / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_dockerfile_shape() -> None:
    text = (REPO_ROOT / "kiusys-app" / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.MULTILINE)
    assert [stage for _, stage in bases] == ["build", "runtime"]
    (base,) = {image for image, _ in bases}
    assert re.fullmatch(r"python:3\.1[2-9]\.\d+-slim(-\w+)?", base), base
    (user,) = re.findall(r"^USER (\d+)(?::\d+)?$", text, re.MULTILINE)
    assert int(user) >= 10000
    assert "ENV PATH=/opt/venv/bin:$PATH" in text
    assert re.search(r"^\s+KIUSYS_STORE=dynamodb$", text, re.MULTILINE)
    # Dependencies are installed before the source is copied.
    assert text.index("requirements.lock") < text.index("COPY kiusys_app")


def stub(directory: Path, name: str, body: str) -> Path:
    """An executable stand-in for a tool, first on PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run(args: list[str], path_dirs: list[Path], **env: str) -> subprocess.CompletedProcess[str]:
    search = ":".join([*(str(d) for d in path_dirs), os.environ["PATH"]])
    return subprocess.run(
        args,
        env={**os.environ, "PATH": search, **env},
        capture_output=True,
        text=True,
        check=False,
    )


# terraform-docs.sh


def test_terraform_docs_script_explains_a_missing_tool(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    for tool in ("bash", "dirname"):
        stub(bare, tool, f'exec {shutil.which(tool)} "$@"')
    # Nothing else is on PATH, terraform-docs least of all.
    result = subprocess.run(
        [str(REPO_ROOT / "terraform-docs.sh")],
        env={"PATH": str(bare)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "terraform-docs is not installed" in result.stderr


@pytest.mark.parametrize(("args", "extra"), [([], ""), (["--check"], " --output-check")])
def test_terraform_docs_script_injects_into_every_root(
    tmp_path: Path, args: list[str], extra: str
) -> None:
    calls = tmp_path / "calls"
    stub(tmp_path / "bin", "terraform-docs", f'echo "$*" >> {calls}')
    result = run([str(REPO_ROOT / "terraform-docs.sh"), *args], [tmp_path / "bin"])
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == [
        f"markdown table --output-file README.md --output-mode inject{extra} {REPO_ROOT / root}"
        for root in ("s3-backends", "dynamodb", "ecr-repo", "eks-cluster")
    ]


# install_kubectl.sh


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback stand-in for dl.k8s.io; yields its URL and the folder it serves."""
    root = tmp_path / "releases"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def publish(root: Path, version: str, arch: str, checksum: str | None = None) -> None:
    folder = root / version / "bin" / "linux" / arch
    folder.mkdir(parents=True)
    binary = folder / "kubectl"
    binary.write_text(f"#!/bin/sh\necho 'Client Version: {version} ({arch})'\n")
    digest = checksum or hashlib.sha256(binary.read_bytes()).hexdigest()
    (folder / "kubectl.sha256").write_text(digest)


def installer(
    release: tuple[str, Path], tmp_path: Path, machine: str = "x86_64", uid: int = 0
) -> subprocess.CompletedProcess[str]:
    tools = tmp_path / "tools"
    stub(tools, "uname", f'[[ "$1" == "-m" ]] && echo {machine} || echo Linux')
    stub(tools, "id", f"echo {uid}")
    stub(tools, "sudo", f'echo "$*" >> {tmp_path / "sudo-calls"}; "$@"')
    return run(
        [str(REPO_ROOT / "install_kubectl.sh"), str(tmp_path / "install")],
        [tools],
        KUBECTL_BASE_URL=release[0],
    )


def pinned_version() -> str:
    text = (REPO_ROOT / "install_kubectl.sh").read_text()
    (version,) = re.findall(r'^readonly default_version="(v[\d.]+)"$', text, re.MULTILINE)
    return version


def test_kubectl_is_pinned_to_the_cluster_minor_version() -> None:
    minor = variable_default("eks-cluster", "kubernetes_version")
    assert pinned_version().startswith(f"v{minor}.")


@pytest.mark.parametrize(("machine", "arch"), [("x86_64", "amd64"), ("aarch64", "arm64")])
def test_installs_the_verified_binary_for_the_architecture(
    release_server: tuple[str, Path], tmp_path: Path, machine: str, arch: str
) -> None:
    publish(release_server[1], pinned_version(), arch)
    result = installer(release_server, tmp_path, machine=machine)
    assert result.returncode == 0, result.stderr
    assert f"Client Version: {pinned_version()} ({arch})" in result.stdout
    assert os.access(tmp_path / "install" / "kubectl", os.X_OK)
    assert not (tmp_path / "sudo-calls").exists(), "root needs no sudo"


def test_a_bad_checksum_installs_nothing(release_server: tuple[str, Path], tmp_path: Path) -> None:
    publish(release_server[1], pinned_version(), "amd64", checksum="0" * 64)
    result = installer(release_server, tmp_path)
    assert result.returncode == 1
    assert "checksum mismatch" in result.stderr
    assert not (tmp_path / "install" / "kubectl").exists()


def test_uses_sudo_only_when_not_root(release_server: tuple[str, Path], tmp_path: Path) -> None:
    publish(release_server[1], pinned_version(), "amd64")
    result = installer(release_server, tmp_path, uid=1000)
    assert result.returncode == 0, result.stderr
    sudo_calls = (tmp_path / "sudo-calls").read_text().splitlines()
    assert [c.split()[0] for c in sudo_calls] == ["install", "install"]


def test_refuses_an_unknown_architecture(release_server: tuple[str, Path], tmp_path: Path) -> None:
    result = installer(release_server, tmp_path, machine="sparc64")
    assert result.returncode == 1
    assert "unsupported architecture: sparc64" in result.stderr


# kubernetes/configure.sh

OUTPUTS = {
    "repository_url": "111122223333.dkr.ecr.sa-east-1.amazonaws.com/kiusys-app",
    "region": "sa-east-1",
    "cluster_name": "kiusys-prod",
    "app_role_arn": "arn:aws:iam::111122223333:role/kiusys-prod-app",
    "autoscaler_role_arn": "arn:aws:iam::111122223333:role/kiusys-prod-cluster-autoscaler",
}


@pytest.fixture
def configure(tmp_path: Path) -> Path:
    """A copy of kubernetes/ and a `terraform` stand-in that knows the outputs above."""
    shutil.copytree(REPO_ROOT / "kubernetes", tmp_path / "kubernetes")
    (tmp_path / "kubernetes" / "configure.sh").chmod(0o755)
    cases = "\n".join(f'  *" {name}") echo -n "{value}" ;;' for name, value in OUTPUTS.items())
    stub(tmp_path / "bin", "terraform", f'case "$*" in\n{cases}\n  *) exit 1 ;;\nesac')
    return tmp_path


def test_configure_fills_image_roles_region_and_cluster(configure: Path) -> None:
    result = run([str(configure / "kubernetes" / "configure.sh"), "1.4.2"], [configure / "bin"])
    assert result.returncode == 0, result.stderr
    deploy = render(configure / "build" / "deploy")
    (container,) = find(deploy, "Deployment", "kiusys-app")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == f"{OUTPUTS['repository_url']}:1.4.2"
    for account, output in (
        ("kiusys-app", "app_role_arn"),
        ("cluster-autoscaler", "autoscaler_role_arn"),
    ):
        annotations = find(deploy, "ServiceAccount", account)["metadata"]["annotations"]
        assert annotations["eks.amazonaws.com/role-arn"] == OUTPUTS[output]
    (config,) = [m for m in deploy if m["kind"] == "ConfigMap"]
    assert config["data"]["AWS_REGION"] == "sa-east-1"
    assert config["data"]["KIUSYS_TABLE_NAME"] == "flights-db"
    command = find(deploy, "Deployment", "cluster-autoscaler")["spec"]["template"]["spec"][
        "containers"
    ][0]["command"]
    assert any(arg.endswith("k8s.io/cluster-autoscaler/kiusys-prod") for arg in command)
    assert [p["port"] for p in find(deploy, "Service", "kiusys-app")["spec"]["ports"]] == [80]


def test_configure_adds_tls_when_a_certificate_is_given(configure: Path) -> None:
    arn = "arn:aws:acm:sa-east-1:111122223333:certificate/0f2e-aa11"
    result = run(
        [str(configure / "kubernetes" / "configure.sh"), "1.4.2"],
        [configure / "bin"],
        ACM_CERTIFICATE_ARN=arn,
    )
    assert result.returncode == 0, result.stderr
    service = find(render(configure / "build" / "deploy"), "Service", "kiusys-app")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        (80, "http"),
        (443, "http"),
    ]
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"] == arn
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-ports"] == "443"


@pytest.mark.parametrize("tag", ["", "latest", "bad tag"])
def test_configure_refuses_a_missing_or_mutable_tag(configure: Path, tag: str) -> None:
    result = run([str(configure / "kubernetes" / "configure.sh"), tag], [configure / "bin"])
    assert result.returncode == 2
    assert not (configure / "build" / "deploy").exists()


def test_the_deploy_overlay_is_git_ignored() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "build/deploy/kustomization.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, "the overlay holds an account ID and must never be committed"
