"""The shell scripts and the Dockerfile: linted, and run against stand-ins for their tools."""

import functools
import hashlib
import http.server
import os
import re
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kubernetes.conftest import find, render, variable_default
from tests.kubernetes.test_manifests import LBC, app_container
from tests.support.processes import REPO_ROOT

BASH = shutil.which("bash") or "/bin/bash"
SCRIPTS = [
    "install_kubectl.sh",
    "install_helm.sh",
    "terraform-docs.sh",
    "kubernetes/configure.sh",
    ".ci/run",
]


@pytest.mark.parametrize("script", [*SCRIPTS, "install_common.sh"])
def test_shellcheck_clean(script: str) -> None:
    result = subprocess.run(
        ["shellcheck", "--external-sources", "--severity=style", str(REPO_ROOT / script)],
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
    """A loopback stand-in for a release site; yields its URL and the folder it serves."""
    root = tmp_path / "releases"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def fake_binary(path: Path, name: str, version: str, arch: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{name} {version} ({arch})'\n")
    path.chmod(0o755)


@dataclass(frozen=True)
class Installer:
    """An install script, and how its release site lays out a release."""

    script: str
    base_url_variable: str

    @property
    def tool(self) -> str:
        return self.script.removeprefix("install_").removesuffix(".sh")

    def pinned_version(self) -> str:
        text = (REPO_ROOT / self.script).read_text()
        (version,) = re.findall(r'^readonly default_version="(v[\d.]+)"$', text, re.MULTILINE)
        return version

    def publish(self, root: Path, arch: str, checksum: str | None = None) -> None:
        version = self.pinned_version()
        if self.tool == "kubectl":  # dl.k8s.io: the binary, and its digest beside it
            artifact = root / version / "bin" / "linux" / arch / "kubectl"
            fake_binary(artifact, "kubectl", version, arch)
        else:  # get.helm.sh: a tarball holding linux-ARCH/helm, and its digest beside it
            staging = root / "staging"
            fake_binary(staging / f"linux-{arch}" / "helm", "helm", version, arch)
            artifact = root / f"helm-{version}-linux-{arch}.tar.gz"
            with tarfile.open(artifact, "w:gz") as archive:
                archive.add(staging / f"linux-{arch}", arcname=f"linux-{arch}")
        digest = checksum or hashlib.sha256(artifact.read_bytes()).hexdigest()
        (artifact.parent / f"{artifact.name}.sha256").write_text(digest)

    def run(
        self, release: tuple[str, Path], tmp_path: Path, machine: str = "x86_64", uid: int = 0
    ) -> subprocess.CompletedProcess[str]:
        tools = tmp_path / "tools"
        stub(tools, "uname", f'[[ "$1" == "-m" ]] && echo {machine} || echo Linux')
        stub(tools, "id", f"echo {uid}")
        stub(tools, "sudo", f'echo "$*" >> {tmp_path / "sudo-calls"}; "$@"')
        return run(
            [str(REPO_ROOT / self.script), str(tmp_path / "install")],
            [tools],
            **{self.base_url_variable: release[0]},
        )


INSTALLERS = [
    Installer("install_kubectl.sh", "KUBECTL_BASE_URL"),
    Installer("install_helm.sh", "HELM_BASE_URL"),
]
installers = pytest.mark.parametrize("installer", INSTALLERS, ids=lambda i: i.tool)


def test_kubectl_is_pinned_to_the_cluster_minor_version() -> None:
    minor = variable_default("eks-cluster", "kubernetes_version")
    assert INSTALLERS[0].pinned_version().startswith(f"v{minor}.")


@installers
@pytest.mark.parametrize(("machine", "arch"), [("x86_64", "amd64"), ("aarch64", "arm64")])
def test_installs_the_verified_binary_for_the_architecture(
    installer: Installer,
    release_server: tuple[str, Path],
    tmp_path: Path,
    machine: str,
    arch: str,
) -> None:
    installer.publish(release_server[1], arch)
    result = installer.run(release_server, tmp_path, machine=machine)
    assert result.returncode == 0, result.stderr
    assert f"{installer.tool} {installer.pinned_version()} ({arch})" in result.stdout
    assert os.access(tmp_path / "install" / installer.tool, os.X_OK)
    assert not (tmp_path / "sudo-calls").exists(), "root needs no sudo"


@installers
def test_a_bad_checksum_installs_nothing(
    installer: Installer, release_server: tuple[str, Path], tmp_path: Path
) -> None:
    installer.publish(release_server[1], "amd64", checksum="0" * 64)
    result = installer.run(release_server, tmp_path)
    assert result.returncode == 1
    assert "checksum mismatch" in result.stderr
    assert not (tmp_path / "install" / installer.tool).exists()


@installers
def test_uses_sudo_only_when_not_root(
    installer: Installer, release_server: tuple[str, Path], tmp_path: Path
) -> None:
    installer.publish(release_server[1], "amd64")
    result = installer.run(release_server, tmp_path, uid=1000)
    assert result.returncode == 0, result.stderr
    sudo_calls = (tmp_path / "sudo-calls").read_text().splitlines()
    assert [c.split()[0] for c in sudo_calls] == ["install", "install"]


@installers
def test_refuses_an_unknown_architecture(
    installer: Installer, release_server: tuple[str, Path], tmp_path: Path
) -> None:
    result = installer.run(release_server, tmp_path, machine="sparc64")
    assert result.returncode == 1
    assert "unsupported architecture: sparc64" in result.stderr


# kubernetes/configure.sh

OUTPUTS = {
    "repository_url": "111122223333.dkr.ecr.sa-east-1.amazonaws.com/kiusys-app",
    "region": "sa-east-1",
    "cluster_name": "kiusys-prod",
    "vpc_id": "vpc-0a1b2c3d4e5f60718",
    "app_role_arn": "arn:aws:iam::111122223333:role/kiusys-prod-app",
    "autoscaler_role_arn": "arn:aws:iam::111122223333:role/kiusys-prod-cluster-autoscaler",
    "load_balancer_controller_role_arn": "arn:aws:iam::111122223333:role/kiusys-prod-lbc",
    "domain_name": "",
    "hosted_zone_id": "",
    "certificate_arn": "",
    "external_dns_role_arn": "",
    "regions": "",
    "health_check_id": "",
    "regional_hostname": "",
}
# Without a certificate, configure.sh renders plain HTTP only when told to accept the risk.
PLAINTEXT = {"SEND_API_KEYS_IN_CLEAR_TEXT": "yes"}
WITH_DOMAIN = {
    **OUTPUTS,
    "domain_name": "api.example.com",
    # The zone of example.com: a parent of the domain.
    "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
    "certificate_arn": "arn:aws:acm:sa-east-1:111122223333:certificate/0f2e-aa11",
    "external_dns_role_arn": "arn:aws:iam::111122223333:role/kiusys-prod-external-dns",
}


def configure_copy(tmp_path: Path, outputs: dict[str, str]) -> Path:
    """A copy of kubernetes/ and a `terraform` stand-in that knows `outputs`."""
    shutil.copytree(REPO_ROOT / "kubernetes", tmp_path / "kubernetes")
    (tmp_path / "kubernetes" / "configure.sh").chmod(0o755)
    cases = "\n".join(f'  *" {name}") echo -n "{value}" ;;' for name, value in outputs.items())
    stub(tmp_path / "bin", "terraform", f'case "$*" in\n{cases}\n  *) exit 1 ;;\nesac')
    return tmp_path


def configured(tmp_path: Path, outputs: dict[str, str], image: str = "1.4.2", **env: str) -> Path:
    """Runs configure.sh for `image` on a copy of kubernetes/; the folder it wrote."""
    configure_copy(tmp_path, outputs)
    result = run([str(tmp_path / "kubernetes" / "configure.sh"), image], [tmp_path / "bin"], **env)
    assert result.returncode == 0, result.stderr
    return tmp_path / "build" / "deploy"


def helm_values(deploy: Path, chart: str) -> dict[str, Any]:
    return yaml.safe_load((deploy / f"{chart}.values.yaml").read_text())  # type: ignore[no-any-return]


def test_configure_fills_image_roles_region_and_cluster(tmp_path: Path) -> None:
    deploy = configured(tmp_path, OUTPUTS, **PLAINTEXT)
    rendered = render(deploy)
    (container,) = find(rendered, "Deployment", "kiusys-app")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == f"{OUTPUTS['repository_url']}:1.4.2"
    for account, output in (
        ("kiusys-app", "app_role_arn"),
        ("cluster-autoscaler", "autoscaler_role_arn"),
    ):
        annotations = find(rendered, "ServiceAccount", account)["metadata"]["annotations"]
        assert annotations["eks.amazonaws.com/role-arn"] == OUTPUTS[output]
    (config,) = [m for m in rendered if m["kind"] == "ConfigMap"]
    assert config["data"]["AWS_REGION"] == "sa-east-1"
    assert config["data"]["KIUSYS_TABLE_NAME"] == "flights-db"
    (autoscaler,) = find(rendered, "Deployment", "cluster-autoscaler")["spec"]["template"]["spec"][
        "containers"
    ]
    assert any(a.endswith("k8s.io/cluster-autoscaler/kiusys-prod") for a in autoscaler["command"])
    assert autoscaler["env"] == [{"name": "AWS_REGION", "value": "sa-east-1"}]
    service = find(rendered, "Service", "kiusys-app")
    assert [p["port"] for p in service["spec"]["ports"]] == [80], "no certificate: plain HTTP"
    assert "external-dns.alpha.kubernetes.io/hostname" not in service["metadata"]["annotations"]
    assert not (deploy / "external-dns.values.yaml").exists(), "no domain: no external-dns"


def test_configure_writes_the_load_balancer_controllers_values(tmp_path: Path) -> None:
    values = helm_values(configured(tmp_path, OUTPUTS, **PLAINTEXT), "aws-load-balancer-controller")
    assert values == {
        "clusterName": "kiusys-prod",
        "region": "sa-east-1",
        "vpcId": "vpc-0a1b2c3d4e5f60718",
        "serviceAccount": {
            "create": True,
            "name": "aws-load-balancer-controller",
            "annotations": {
                "eks.amazonaws.com/role-arn": OUTPUTS["load_balancer_controller_role_arn"]
            },
        },
    }
    trust = (REPO_ROOT / "eks-cluster" / "irsa.tf").read_text()
    assert "system:serviceaccount:kube-system:aws-load-balancer-controller" in trust


def test_configure_serves_only_tls_and_points_the_domain_when_there_is_one(
    tmp_path: Path,
) -> None:
    deploy = configured(tmp_path, WITH_DOMAIN)
    service = find(render(deploy), "Service", "kiusys-app")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, "http")]
    annotations = service["metadata"]["annotations"]
    assert annotations[f"{LBC}ssl-cert"] == WITH_DOMAIN["certificate_arn"]
    assert annotations["external-dns.alpha.kubernetes.io/hostname"] == "api.example.com"
    values = helm_values(deploy, "external-dns")
    assert values["domainFilters"] == ["api.example.com"]
    assert values["extraArgs"] == {
        "zone-id-filter": [WITH_DOMAIN["hosted_zone_id"]],
        "aws-zone-match-parent": True,
    }
    assert values["txtOwnerId"] == "kiusys-prod"
    assert values["policy"] == "sync", "the record goes when the Service goes"
    assert values["serviceAccount"]["name"] == "external-dns"
    role = values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role == WITH_DOMAIN["external_dns_role_arn"]


def external_dns_keeps_zone(values: dict[str, Any], zone_id: str, zone_name: str) -> bool:
    """Whether external-dns v0.21.0 on AWS manages a zone, given the chart values' flags: the
    rule of provider/aws/aws.go (zone-id filter, then the domain filter on the zone's name or,
    with aws-zone-match-parent, a filter under it) and endpoint/domain_filter.go's MatchParent."""
    args = values.get("extraArgs", {})
    if args.get("zone-id-filter") and zone_id not in args["zone-id-filter"]:
        return False
    filters = values.get("domainFilters", [])
    name = zone_name.rstrip(".")
    if not filters or any(name == f or name.endswith(f".{f}") for f in filters):
        return True
    return bool(args.get("aws-zone-match-parent")) and any(f.endswith(f".{name}") for f in filters)


def test_external_dns_finds_the_parent_zone_and_no_other(tmp_path: Path) -> None:
    values = helm_values(configured(tmp_path, WITH_DOMAIN), "external-dns")
    zone = WITH_DOMAIN["hosted_zone_id"]
    assert external_dns_keeps_zone(values, zone, "example.com.")
    assert not external_dns_keeps_zone(values, "ZOTHERZONE0000000000", "example.com.")
    # What the values used to be, a domain filter alone, skipped the parent zone.
    assert not external_dns_keeps_zone({"domainFilters": ["api.example.com"]}, zone, "example.com.")


IN_TWO_REGIONS = {
    **WITH_DOMAIN,
    "regions": "us-east-1,sa-east-1",
    "health_check_id": "0b6c3c5e-93c4-4b1e-a2f8-6a4d2a0b9e11",
    "regional_hostname": "sa-east-1.api.example.com",
}


def test_configure_in_a_second_region_counts_across_both_and_writes_its_latency_record(
    tmp_path: Path,
) -> None:
    outputs = {**IN_TWO_REGIONS, "repository_url": OUTPUTS["repository_url"].replace("sa-", "us-")}
    rendered = render(configured(tmp_path, outputs))
    (config,) = [m for m in rendered if m["kind"] == "ConfigMap"]
    assert config["data"]["KIUSYS_REGIONS"] == "us-east-1,sa-east-1"
    (container,) = find(rendered, "Deployment", "kiusys-app")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == f"{OUTPUTS['repository_url']}:1.4.2", "this region's replica"
    annotations = find(rendered, "Service", "kiusys-app")["metadata"]["annotations"]
    dns = {k.rpartition("/")[2]: v for k, v in annotations.items() if k.startswith("external-dns")}
    assert dns == {
        "hostname": "api.example.com,sa-east-1.api.example.com",
        "set-identifier": "sa-east-1",
        "aws-region": "sa-east-1",
        "aws-health-check-id": IN_TWO_REGIONS["health_check_id"],
    }


def test_configure_in_one_region_sets_no_region_list_and_no_latency_record(tmp_path: Path) -> None:
    rendered = render(configured(tmp_path, WITH_DOMAIN))
    (config,) = [m for m in rendered if m["kind"] == "ConfigMap"]
    assert "KIUSYS_REGIONS" not in config["data"]
    annotations = find(rendered, "Service", "kiusys-app")["metadata"]["annotations"]
    assert "external-dns.alpha.kubernetes.io/set-identifier" not in annotations


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ({**IN_TWO_REGIONS, "regions": "us-east-1,eu-west-1"}, "is not one of the tables' regions"),
        ({**IN_TWO_REGIONS, "health_check_id": ""}, "regional_endpoint=true"),
    ],
)
def test_configure_refuses_a_region_outside_the_tables_or_without_its_health_check(
    tmp_path: Path, outputs: dict[str, str], expected: str
) -> None:
    configure_copy(tmp_path, outputs)
    result = run([str(tmp_path / "kubernetes" / "configure.sh"), "1.4.2"], [tmp_path / "bin"])
    assert result.returncode == 2
    assert expected in result.stderr
    assert not (tmp_path / "build" / "deploy").exists()


def test_configure_refuses_plain_http_unless_told_to_accept_it(configure: Path) -> None:
    result = run([str(configure / "kubernetes" / "configure.sh"), "1.4.2"], [configure / "bin"])
    assert result.returncode == 2
    assert "clear text" in result.stderr
    assert "SEND_API_KEYS_IN_CLEAR_TEXT=yes" in result.stderr
    assert not (configure / "build" / "deploy").exists()


def test_a_domain_without_a_hosted_zone_serves_tls_and_leaves_dns_to_the_operator(
    tmp_path: Path,
) -> None:
    outputs = {**WITH_DOMAIN, "hosted_zone_id": "", "external_dns_role_arn": ""}
    deploy = configured(tmp_path, outputs)
    service = find(render(deploy), "Service", "kiusys-app")
    assert [p["port"] for p in service["spec"]["ports"]] == [443]
    assert "external-dns.alpha.kubernetes.io/hostname" not in service["metadata"]["annotations"]
    assert not (deploy / "external-dns.values.yaml").exists()


def test_a_given_certificate_takes_precedence(tmp_path: Path) -> None:
    arn = "arn:aws:acm:sa-east-1:111122223333:certificate/9999-bbbb"
    service = find(
        render(configured(tmp_path, OUTPUTS, ACM_CERTIFICATE_ARN=arn)), "Service", "kiusys-app"
    )
    assert [p["port"] for p in service["spec"]["ports"]] == [443]
    assert service["metadata"]["annotations"][f"{LBC}ssl-cert"] == arn


@pytest.fixture
def configure(tmp_path: Path) -> Path:
    return configure_copy(tmp_path, OUTPUTS)


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


def test_configure_adds_monitoring_for_the_named_prometheus_release(tmp_path: Path) -> None:
    rendered = render(configured(tmp_path, WITH_DOMAIN, PROMETHEUS_RELEASE="monitoring-stack"))
    service = find(rendered, "Service", "kiusys-app")
    assert [p["port"] for p in service["spec"]["ports"]] == [443], "both components"
    for kind in ("PodMonitor", "PrometheusRule"):
        assert find(rendered, kind, "kiusys-app")["metadata"]["labels"]["release"] == (
            "monitoring-stack"
        )
    dashboard = find(rendered, "ConfigMap", "kiusys-app-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_configure_leaves_monitoring_out_unless_asked(tmp_path: Path) -> None:
    kinds = {m["kind"] for m in render(configured(tmp_path, OUTPUTS, **PLAINTEXT))}
    assert kinds.isdisjoint({"PodMonitor", "PrometheusRule"})


def test_configure_refuses_a_release_name_helm_would_refuse(configure: Path) -> None:
    result = run(
        [str(configure / "kubernetes" / "configure.sh"), "1.4.2"],
        [configure / "bin"],
        PROMETHEUS_RELEASE="Bad_Name",
        **PLAINTEXT,
    )
    assert result.returncode == 2
    assert "Helm release name" in result.stderr


DIGEST = "sha256:" + "ab" * 32
DEPLOY_SELECTOR = ("app.kubernetes.io/instance", "kiusys-app")
# What the release workflow sets from repository variables (see README "Delivery").
DEPLOY_ENV = {f"TF_OUTPUT_{name.upper()}": value for name, value in WITH_DOMAIN.items()}


def test_configure_takes_outputs_from_the_environment_and_an_image_digest(
    tmp_path: Path,
) -> None:
    # A terraform that knows nothing: every output must come from TF_OUTPUT_*.
    deploy = configured(tmp_path, {}, DIGEST, **DEPLOY_ENV)
    container = app_container(render(deploy))
    assert container["image"] == f"{WITH_DOMAIN['repository_url']}@{DIGEST}"


def test_the_deploy_selector_picks_only_the_app_namespace(tmp_path: Path) -> None:
    """The release workflow applies `-l app.kubernetes.io/instance=kiusys-app`: what its role's
    namespace-scoped access entry may change."""
    rendered = render(configured(tmp_path, {}, DIGEST, **DEPLOY_ENV))
    selected = [
        m for m in rendered if m["metadata"]["labels"].get(DEPLOY_SELECTOR[0]) == DEPLOY_SELECTOR[1]
    ]
    assert {m["metadata"].get("namespace") for m in selected} == {"kiusys"}
    assert {m["kind"] for m in selected} >= {"Deployment", "Service", "ConfigMap", "ServiceAccount"}
    release = (REPO_ROOT / ".github" / "workflows" / "release.yml").read_text()
    assert f"--selector {DEPLOY_SELECTOR[0]}={DEPLOY_SELECTOR[1]}" in release


@pytest.mark.parametrize("image", ["sha256:abc", "sha256:" + "AB" * 32])
def test_configure_refuses_a_malformed_digest(configure: Path, image: str) -> None:
    result = run([str(configure / "kubernetes" / "configure.sh"), image], [configure / "bin"])
    assert result.returncode == 2
    assert "digest" in result.stderr


@pytest.mark.parametrize("script", SCRIPTS[:4])
def test_help_prints_the_usage_and_exits_0_with_nothing_done(script: str, tmp_path: Path) -> None:
    """No download (the release URLs point nowhere), no install, no terraform-docs needed."""
    nowhere = "http://127.0.0.1:9"
    env = {"PATH": "/usr/bin:/bin", "KUBECTL_BASE_URL": nowhere, "HELM_BASE_URL": nowhere}
    shown = subprocess.run(
        [BASH, str(REPO_ROOT / script), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (shown.returncode, shown.stderr) == (0, "")
    header = (REPO_ROOT / script).read_text().splitlines()[1].removeprefix("# ")
    assert shown.stdout.startswith(header + "\n")
    assert "Usage: " in shown.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", ["install_kubectl.sh", "install_helm.sh"])
def test_an_unknown_option_is_refused_not_taken_for_the_install_directory(script: str) -> None:
    refused = subprocess.run(
        [BASH, str(REPO_ROOT / script), "--force"], capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 1
    assert refused.stderr == f"{script}: unknown option '--force' (see --help)\n"


# What bash 3.2 (macOS's /bin/bash) does not have: case changes, associative arrays, mapfile,
# `[[ -v`, `&>>` and `|&`, `;&`. No bash 3.2 can be installed here, so the scripts are read.
BASH_4_ONLY = re.compile(
    r"\$\{\w+(\^\^?|,,?)\}|declare -A|\bmapfile\b|\breadarray\b|\[\[ -v |&>>|\|&|;;?&"
)


@pytest.mark.parametrize("script", [*SCRIPTS, "install_common.sh"])
def test_scripts_use_nothing_that_bash_3_2_lacks(script: str) -> None:
    code = "\n".join(
        line.split(" #", 1)[0]
        for line in (REPO_ROOT / script).read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    assert BASH_4_ONLY.findall(code) == []
