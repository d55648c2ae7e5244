"""The manifests: valid for the cluster's version, checkov-clean, restricted, and consistent."""

import json
import os
import re
import shutil
import subprocess
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from kiusys_app.api.routes.health import LIVENESS_PATH, READINESS_PATH
from kiusys_app.main import create_app
from kiusys_app.metrics import METRICS_PATH
from kiusys_app.stores.dynamodb.store import PING_BUDGET_SECONDS
from tests.kubernetes.conftest import Manifest, find, render, variable_default
from tests.support.app import sqlite_settings
from tests.support.processes import REPO_ROOT

RECOMMENDED_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
}


def app_container(rendered: list[Manifest]) -> dict[str, Any]:
    deployment = find(rendered, "Deployment", "kiusys-app")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def test_strictly_valid_for_the_cluster_version(
    rendered: list[Manifest], kubernetes_minor: str, tmp_path: Path
) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text("\n---\n".join(json.dumps(m) for m in rendered))
    result = subprocess.run(
        ["kubernetes-validate", "--strict", "-k", f"{kubernetes_minor}.0", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(rendered)


def run_checkov(framework: str, path: Path) -> dict[str, Any]:
    checkov = os.environ.get("KIUSYS_CHECKOV", "checkov")
    if not shutil.which(checkov):
        pytest.fail(f"checkov not found at {checkov!r}; run through `make test`")
    result = subprocess.run(
        [
            checkov,
            "--framework",
            framework,
            "-f",
            str(path),
            "--quiet",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report  # type: ignore[no-any-return]


@pytest.mark.parametrize("framework", ["kubernetes", "dockerfile"])
def test_checkov_finds_no_failed_checks(
    framework: str, rendered: list[Manifest], tmp_path: Path
) -> None:
    if framework == "kubernetes":
        path = tmp_path / "rendered.yaml"
        path.write_text("\n---\n".join(json.dumps(m) for m in rendered))
    else:
        path = REPO_ROOT / "kiusys-app" / "Dockerfile"
    report = run_checkov(framework, path)
    print(f"checkov {framework}: {report['summary']}")
    assert [c["check_id"] for c in report["results"]["failed_checks"]] == []
    assert report["summary"]["passed"] > 50
    for skipped in report["results"].get("skipped_checks", []):
        assert len(skipped["check_result"].get("suppress_comment", "")) > 30


def test_every_object_carries_the_recommended_labels(rendered: list[Manifest]) -> None:
    for manifest in rendered:
        labels = set(manifest["metadata"].get("labels", {}))
        assert labels >= RECOMMENDED_LABELS, (manifest["kind"], manifest["metadata"]["name"])


def test_namespace_enforces_restricted_pod_security(rendered: list[Manifest]) -> None:
    labels = find(rendered, "Namespace", "kiusys")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_deployment_leaves_replicas_to_the_hpa_and_never_drops_below_capacity(
    rendered: list[Manifest],
) -> None:
    spec = find(rendered, "Deployment", "kiusys-app")["spec"]
    assert "replicas" not in spec
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_a_new_pod_is_available_only_after_two_more_readiness_probes(
    rendered: list[Manifest],
) -> None:
    spec = find(rendered, "Deployment", "kiusys-app")["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    assert spec["minReadySeconds"] >= 2 * container["readinessProbe"]["periodSeconds"]


@pytest.mark.parametrize("name", ["kiusys-app", "cluster-autoscaler"])
def test_pods_run_restricted(rendered: list[Manifest], name: str) -> None:
    pod = find(rendered, "Deployment", name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])


def test_app_pod_probes_token_and_shutdown(rendered: list[Manifest]) -> None:
    pod = find(rendered, "Deployment", "kiusys-app")["spec"]["template"]["spec"]
    container = app_container(rendered)
    assert pod["automountServiceAccountToken"] is False
    # The app defines the probe paths once; the manifest must name the same ones.
    assert container["readinessProbe"]["httpGet"]["path"] == READINESS_PATH
    assert container["livenessProbe"]["httpGet"]["path"] == LIVENESS_PATH
    # A store that answers slowly still answers the probe, ready, before the kubelet gives up.
    assert container["readinessProbe"]["timeoutSeconds"] > PING_BUDGET_SECONDS
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < pre_stop < pod["terminationGracePeriodSeconds"]
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_probe_paths_exist_in_the_app(rendered: list[Manifest], tmp_path: Path) -> None:
    paths = set(create_app(sqlite_settings(tmp_path)).openapi()["paths"])
    container = app_container(rendered)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in paths


def dockerfile_cmd() -> list[str]:
    text = (REPO_ROOT / "kiusys-app" / "Dockerfile").read_text()
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, re.MULTILINE)
    return json.loads(cmd)  # type: ignore[no-any-return]


def test_ports_agree_across_dockerfile_deployment_and_service(rendered: list[Manifest]) -> None:
    cmd = dockerfile_cmd()
    docker_port = int(cmd[cmd.index("--port") + 1])
    metrics_port = int(cmd[cmd.index("--metrics-port") + 1])
    text = (REPO_ROOT / "kiusys-app" / "Dockerfile").read_text()
    assert re.search(rf"^EXPOSE {docker_port} {metrics_port}$", text, re.MULTILINE)
    ports = {p["name"]: p["containerPort"] for p in app_container(rendered)["ports"]}
    assert ports == {"http": docker_port, "metrics": metrics_port}
    (service_port,) = find(rendered, "Service", "kiusys-app")["spec"]["ports"]
    assert (service_port["port"], ports[service_port["targetPort"]]) == (80, docker_port)


def test_dockerfile_runs_the_package_serve_command() -> None:
    cmd = dockerfile_cmd()
    (script,) = entry_points(group="console_scripts", name=cmd[0])
    assert script.value == "kiusys_app.serve:main"
    assert "--workers" not in cmd, "one worker: the pod is the unit of scale"


def test_hpa_targets_the_deployment(rendered: list[Manifest]) -> None:
    hpa = find(rendered, "HorizontalPodAutoscaler", "kiusys-app")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    find(rendered, target["kind"], target["name"])
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["target"]["averageUtilization"] == 60


def test_selectors_match_pod_labels(rendered: list[Manifest]) -> None:
    for name in ("kiusys-app", "cluster-autoscaler"):
        pod_labels = find(rendered, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        selectors = [find(rendered, "Deployment", name)["spec"]["selector"]["matchLabels"]]
        selectors.append(
            find(rendered, "PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"]
        )
        selectors.append(
            find(rendered, "NetworkPolicy", name)["spec"]["podSelector"]["matchLabels"]
        )
        if name == "kiusys-app":
            selectors.append(find(rendered, "Service", name)["spec"]["selector"])
        for selector in selectors:
            assert selector.items() <= pod_labels.items(), (name, selector)


def test_network_policy_admits_the_api_from_anywhere_and_metrics_from_the_cluster(
    rendered: list[Manifest],
) -> None:
    policy = find(rendered, "NetworkPolicy", "kiusys-app")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    ports = {p["name"]: p["containerPort"] for p in app_container(rendered)["ports"]}
    api, metrics = policy["ingress"]
    assert api == {"ports": [{"port": ports["http"], "protocol": "TCP"}]}, "through the NLB"
    assert metrics == {
        "from": [{"namespaceSelector": {}}],  # any pod of this cluster, nothing outside it
        "ports": [{"port": ports["metrics"], "protocol": "TCP"}],
    }


def test_every_network_policy_names_its_ports_by_number(rendered: list[Manifest]) -> None:
    policies = [m for m in rendered if m["kind"] == "NetworkPolicy"]
    assert len(policies) == 2
    for policy in policies:
        for rule in policy["spec"]["ingress"]:
            assert all(isinstance(p["port"], int) for p in rule["ports"]), policy["metadata"]


def test_every_zone_reaches_a_ready_pod(rendered: list[Manifest]) -> None:
    annotations = find(rendered, "Service", "kiusys-app")["metadata"]["annotations"]
    assert annotations[f"{LBC}attributes"] == "load_balancing.cross_zone.enabled=true"


def test_service_account_matches_the_irsa_trust(rendered: list[Manifest]) -> None:
    account = find(rendered, "ServiceAccount", "kiusys-app")["metadata"]
    deployment = find(rendered, "Deployment", "kiusys-app")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]
    trust = (REPO_ROOT / "eks-cluster" / "irsa.tf").read_text()
    assert '"system:serviceaccount:${var.app_namespace}:${var.app_service_account}"' in trust
    assert account["namespace"] == variable_default("eks-cluster", "app_namespace")
    assert account["name"] == variable_default("eks-cluster", "app_service_account")
    autoscaler = find(rendered, "ServiceAccount", "cluster-autoscaler")["metadata"]
    assert f"system:serviceaccount:{autoscaler['namespace']}:{autoscaler['name']}" in trust


def test_app_config_names_the_dynamodb_tables(rendered: list[Manifest]) -> None:
    (config,) = [
        m
        for m in rendered
        if m["kind"] == "ConfigMap" and m["metadata"]["name"].startswith("kiusys-app-config")
    ]
    env_from = app_container(rendered)["envFrom"]
    assert env_from == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    data = config["data"]
    assert data["KIUSYS_STORE"] == "dynamodb"
    assert data["KIUSYS_TABLE_NAME"] == variable_default("dynamodb", "table_name")
    assert data["KIUSYS_IDEMPOTENCY_TABLE_NAME"] == variable_default(
        "dynamodb", "idempotency_table_name"
    )
    assert data["KIUSYS_TABLE_NAME"] == variable_default("eks-cluster", "table_name")


def test_cluster_autoscaler_follows_the_cluster_version(
    rendered: list[Manifest], kubernetes_minor: str
) -> None:
    (container,) = find(rendered, "Deployment", "cluster-autoscaler")["spec"]["template"]["spec"][
        "containers"
    ]
    # The latest patch of the cluster's minor version when this was written.
    assert (
        container["image"]
        == f"registry.k8s.io/autoscaling/cluster-autoscaler:v{kubernetes_minor}.2"
    )
    discovery = [a for a in container["command"] if a.startswith("--node-group-auto-discovery=")]
    cluster = variable_default("eks-cluster", "cluster_name")
    assert discovery == [
        f"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/{cluster}"
    ]


def test_cluster_autoscaler_can_sync_every_informer(rendered: list[Manifest]) -> None:
    """Since 1.33 it waits for all its informers before its first loop; one it may not list or
    watch leaves it Running and Ready and never scaling."""
    rules = find(rendered, "ClusterRole", "cluster-autoscaler")["rules"]
    granted = {
        (group, resource)
        for rule in rules
        if {"list", "watch"} <= set(rule["verbs"]) and "resourceNames" not in rule
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert ("storage.k8s.io", "volumeattachments") in granted
    for resource in ("pods", "nodes", "persistentvolumeclaims", "persistentvolumes"):
        assert ("", resource) in granted
    for resource in ("csinodes", "csidrivers", "csistoragecapacities", "storageclasses"):
        assert ("storage.k8s.io", resource) in granted


def test_cluster_autoscaler_is_told_its_region(rendered: list[Manifest]) -> None:
    (container,) = find(rendered, "Deployment", "cluster-autoscaler")["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AWS_REGION"] == variable_default("eks-cluster", "region")


def test_the_app_scratch_volume_cannot_pin_a_node(rendered: list[Manifest]) -> None:
    """The autoscaler skips nodes whose pods hold disk-backed local storage, unless the pod is
    marked safe to evict; an in-memory emptyDir is not local storage to it."""
    template = find(rendered, "Deployment", "kiusys-app")["spec"]["template"]
    safe = (
        template["metadata"]
        .get("annotations", {})
        .get("cluster-autoscaler.kubernetes.io/safe-to-evict")
    )
    scratch = [v for v in template["spec"]["volumes"] if "emptyDir" in v]
    assert scratch, "the app mounts a writable /tmp"
    for volume in scratch:
        assert volume["emptyDir"].get("medium") == "Memory" or safe == "true", volume
        assert volume["emptyDir"]["sizeLimit"]


LBC = "service.beta.kubernetes.io/aws-load-balancer-"


def test_the_service_is_an_nlb_of_the_load_balancer_controller(rendered: list[Manifest]) -> None:
    annotations = find(rendered, "Service", "kiusys-app")["metadata"]["annotations"]
    assert annotations[f"{LBC}type"] == "external", "not the legacy in-tree provider"
    assert annotations[f"{LBC}nlb-target-type"] == "ip"
    assert annotations[f"{LBC}scheme"] == "internet-facing"
    assert annotations[f"{LBC}healthcheck-protocol"] == "HTTP"
    assert annotations[f"{LBC}healthcheck-path"] == READINESS_PATH
    # Only the controller's annotations: the in-tree provider's would be silently ignored.
    legacy = {f"{LBC}{name}" for name in ("backend-protocol", "connection-draining-enabled")}
    assert not legacy & set(annotations)


def test_draining_fits_inside_the_pods_shutdown(rendered: list[Manifest]) -> None:
    annotations = find(rendered, "Service", "kiusys-app")["metadata"]["annotations"]
    attributes = dict(
        pair.split("=") for pair in annotations[f"{LBC}target-group-attributes"].split(",")
    )
    delay = int(attributes["deregistration_delay.timeout_seconds"])
    pod = find(rendered, "Deployment", "kiusys-app")["spec"]["template"]["spec"]
    pre_stop = app_container(rendered)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < delay < pre_stop < pod["terminationGracePeriodSeconds"]


def test_rollouts_wait_for_healthy_targets(rendered: list[Manifest]) -> None:
    labels = find(rendered, "Namespace", "kiusys")["metadata"]["labels"]
    assert labels["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"


def test_the_tls_component_exposes_only_443(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "kubernetes", tmp_path / "kubernetes")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources:\n  - ../kubernetes\ncomponents:\n  - ../kubernetes/components/tls\n"
    )
    service = find(render(overlay), "Service", "kiusys-app")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("https", 443)]
    annotations = service["metadata"]["annotations"]
    assert annotations[f"{LBC}ssl-ports"] == "443"
    assert annotations[f"{LBC}ssl-negotiation-policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"


def test_no_latest_tags_or_account_ids_in_git() -> None:
    for path in [
        *(REPO_ROOT / "kubernetes").rglob("*.yaml"),
        REPO_ROOT / "kiusys-app" / "Dockerfile",
    ]:
        text = path.read_text()
        assert not re.search(r":latest\b", text), path
        assert not re.search(r"\b\d{12}\b", text), path


def test_the_clients_file_comes_from_a_required_secret(rendered: list[Manifest]) -> None:
    pod = find(rendered, "Deployment", "kiusys-app")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["optional"] is False
    (item,) = volume["secret"]["items"]
    (mount,) = [m for m in app_container(rendered)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    (config,) = [m for m in rendered if m["kind"] == "ConfigMap"]
    assert config["data"]["KIUSYS_CLIENTS_FILE"] == f"{mount['mountPath']}/{item['path']}"
    assert volume["secret"]["secretName"] == "kiusys-clients"
    assert "KIUSYS_API_KEYS_FILE" not in config["data"], "one way in: the clients file"


def test_pods_carry_the_scrape_annotations(rendered: list[Manifest]) -> None:
    template = find(rendered, "Deployment", "kiusys-app")["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    ports = {p["name"]: str(p["containerPort"]) for p in app_container(rendered)["ports"]}
    assert annotations["prometheus.io/port"] == ports["metrics"]
    assert annotations["prometheus.io/path"] == METRICS_PATH
