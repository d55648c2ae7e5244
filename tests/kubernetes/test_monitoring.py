"""The monitoring component: the Prometheus Operator's objects, the rules under promtool, the
dashboard's queries, and a real Prometheus that scrapes the service and raises an alert."""

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kiusys_app.metrics import METRICS_PATH
from tests.kubernetes.conftest import Manifest, find, render
from tests.kubernetes.test_manifests import RECOMMENDED_LABELS, app_container, run_checkov
from tests.support.app import sqlite_settings, started_app
from tests.support.markdown import anchors
from tests.support.processes import (
    REPO_ROOT,
    AppServer,
    app_process,
    dynamodb_standin,
    free_port,
    running,
    wait_for,
)

COMPONENT = REPO_ROOT / "kubernetes" / "components" / "monitoring"
RULE_TESTS = COMPONENT / "prometheusrule.test.yaml"
DASHBOARD = COMPONENT / "dashboard.json"
JOB = "kiusys-app"
# Series that kube-state-metrics exports (docs/metrics/workload/pod-metrics.md and
# horizontalpodautoscaler-metrics.md, v2.20), and Prometheus's own `up`.
NOT_THE_SERVICES = {
    "kube_pod_status_ready",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "up",
}
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset"}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """The base manifests with the monitoring component, as configure.sh renders them."""
    root = tmp_path_factory.mktemp("monitored")
    shutil.copytree(REPO_ROOT / "kubernetes", root / "kubernetes")
    (root / "overlay").mkdir()
    (root / "overlay" / "kustomization.yaml").write_text(
        "resources:\n  - ../kubernetes\ncomponents:\n  - ../kubernetes/components/monitoring\n"
    )
    return render(root / "overlay")


@pytest.fixture(scope="module")
def rules(monitored: list[Manifest]) -> dict[str, Any]:
    """The PrometheusRule's spec: a Prometheus rule file."""
    return find(monitored, "PrometheusRule", "kiusys-app")["spec"]  # type: ignore[no-any-return]


def rule_file(rules: dict[str, Any], directory: Path) -> Path:
    """The rules written where promtool and Prometheus read them, beside their unit tests."""
    shutil.copy(RULE_TESTS, directory)
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if not shutil.which("promtool"):
        pytest.fail("no promtool on PATH; `make test` installs Debian's prometheus package")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, check=False)


def alerts(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def queries(rules: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the rules and of the dashboard's panels."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    dashboard = [target["expr"] for panel in panels for target in panel["targets"]]
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]] + dashboard


def metric_names(expr: str) -> set[str]:
    """The series names an expression reads: identifiers that are not functions, keywords,
    label names (inside braces or a `by (…)`) or durations."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = re.findall(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()", expr)
    return {name for name in names if name not in PROMQL_WORDS}


def exported(tmp_path: Path) -> set[str]:
    """Every series name the service's real exposition declares."""
    with started_app(sqlite_settings(tmp_path)) as client:
        client.post("/save-transaction/AR1133")
    text = generate_latest(REGISTRY).decode()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, [""])
    }


def test_the_component_adds_a_pod_monitor_rules_and_a_dashboard(
    monitored: list[Manifest], tmp_path: Path
) -> None:
    monitor = find(monitored, "PodMonitor", "kiusys-app")
    dashboard = find(monitored, "ConfigMap", "kiusys-app-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["kiusys-app.json"]) == json.loads(DASHBOARD.read_text())
    for selected in (monitor, find(monitored, "PrometheusRule", "kiusys-app")):
        assert selected["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for manifest in monitored:
        assert set(manifest["metadata"].get("labels", {})) >= RECOMMENDED_LABELS
    path = tmp_path / "monitored.yaml"
    path.write_text("\n---\n".join(json.dumps(m) for m in monitored))
    report = run_checkov("kubernetes", path)
    assert [c["check_id"] for c in report["results"]["failed_checks"]] == []


def test_the_pod_monitor_scrapes_the_app_pods_metrics_port(monitored: list[Manifest]) -> None:
    monitor = find(monitored, "PodMonitor", "kiusys-app")["spec"]
    template = find(monitored, "Deployment", "kiusys-app")["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    assert labels[monitor["jobLabel"]] == JOB, "the rules and the dashboard select this job"
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert endpoint["path"] == METRICS_PATH
    assert endpoint["port"] in {p["name"] for p in app_container(monitored)["ports"]}
    operations = (REPO_ROOT / "docs" / "operations.md").read_text()
    runbook = operations[operations.index("#### KiusysNoPodScraped") :].split("\n## ", 1)[0]
    assert f"the `{endpoint['port']}` port" in runbook, "the alert's runbook names the port"


def test_promtool_checks_the_rules(rules: dict[str, Any], tmp_path: Path) -> None:
    result = promtool("check", "rules", rule_file(rules, tmp_path).name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in rules['groups'])} rules found" in result.stdout


def test_promtool_unit_tests_pass_and_cover_every_alert(
    rules: dict[str, Any], tmp_path: Path
) -> None:
    rule_file(rules, tmp_path)
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tested
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    silent = {
        case["alertname"]
        for test in tested
        for case in test["alert_rule_test"]
        if not case["exp_alerts"]
    }
    names = {alert["alert"] for alert in alerts(rules)}
    assert fired == names, "each alert is shown firing"
    # This one shows its silence inside the firing case: the other pod's series stays quiet.
    assert silent == names - {"KiusysStoreMisconfigured"}


def test_every_alert_has_a_summary_a_description_and_a_runbook_in_the_operations_page(
    rules: dict[str, Any],
) -> None:
    headings = anchors((REPO_ROOT / "docs" / "operations.md").read_text())
    for alert in alerts(rules):
        annotations = alert["annotations"]
        assert annotations["summary"]
        assert annotations["description"]
        page, _, fragment = annotations["runbook_url"].partition("#")
        assert page == "docs/operations.md"
        assert fragment == alert["alert"].lower()
        assert fragment in headings, f"no runbook section for {alert['alert']}"
        assert alert["labels"]["severity"] in {"critical", "warning"}


def test_every_series_named_is_exported_recorded_or_kube_state_metrics(
    rules: dict[str, Any], tmp_path: Path
) -> None:
    recorded = {rule.get("record") for group in rules["groups"] for rule in group["rules"]}
    known = exported(tmp_path) | recorded | NOT_THE_SERVICES
    named = set().union(*(metric_names(expr) for expr in queries(rules)))
    assert "kiusys_http_requests_total" in named
    assert "kiusys:sli_errors:ratio_rate5m" in named
    assert named - known == set()


def test_metric_names_sees_through_promql() -> None:
    expr = (
        'sum by (route) (rate(kiusys_http_requests_total{job="kiusys-app", le="0.25"}[5m]))'
        " / on (namespace) kiusys:sli_errors:ratio_rate5m > (14.4 * 0.001) or vector(0)"
    )
    assert metric_names(expr) == {"kiusys_http_requests_total", "kiusys:sli_errors:ratio_rate5m"}


class Prometheus:
    """A real Prometheus (Debian's package) on loopback, through its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}).json()
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def alert_state(self, name: str) -> str | None:
        found = httpx.get(f"{self.url}/api/v1/alerts").json()["data"]["alerts"]
        states = [a["state"] for a in found if a["labels"]["alertname"] == name]
        return states[0] if states else None


@pytest.fixture
def prometheus_scraping(
    rules: dict[str, Any], tmp_path: Path, app: AppServer
) -> Iterator[Prometheus]:
    """Prometheus scraping the app every second as the PodMonitor would (job, namespace and
    pod labels), with the component's rules loaded and evaluated every second."""
    if not shutil.which("prometheus"):
        pytest.fail("no prometheus on PATH; `make test` installs Debian's prometheus package")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file(rules, tmp_path))],
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": METRICS_PATH,
                "static_configs": [
                    {
                        "targets": [app.metrics_url.split("/")[2]],
                        "labels": {"namespace": "kiusys", "pod": "kiusys-app-test"},
                    }
                ],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{free_port()}"
    args = [
        "prometheus",
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
    ]
    with running(args, f"{url}/-/ready", log=tmp_path / "prometheus.log"):
        yield Prometheus(url)


@pytest.fixture
def app() -> Iterator[AppServer]:
    """The service on DynamoDB at a stand-in that refuses the service's role."""
    with dynamodb_standin() as standin:
        env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": standin}
        with app_process(env, ready_path="/healthz") as server:
            httpx.put(
                f"{standin}/_standin/answer",
                json={"status": 400, "error": "AccessDeniedException"},
            ).raise_for_status()
            yield server


@pytest.mark.slow
def test_a_real_prometheus_raises_the_misconfigured_store_alert(
    prometheus_scraping: Prometheus, app: AppServer, rules: dict[str, Any]
) -> None:
    prometheus = prometheus_scraping
    wait_for(lambda: prometheus.query(f'up{{job="{JOB}"}} == 1'), "a scrape", 60, 0.5)
    assert prometheus.alert_state("KiusysStoreMisconfigured") is None
    assert prometheus.alert_state("KiusysAvailabilityBudgetBurn") is None

    def record_calls_fail() -> list[dict[str, Any]]:
        for _ in range(5):
            assert httpx.post(f"{app.url}/save-transaction/AR1133").status_code == 503
        return prometheus.query("kiusys:sli_errors:ratio_rate5m == 1")

    # Every record call is a 503: the availability SLI of the real route labels is 100 %.
    (ratio,) = wait_for(record_calls_fail, "the SLI of failing calls", 60, 0.5)
    assert ratio["metric"] == {"__name__": "kiusys:sli_errors:ratio_rate5m", "namespace": "kiusys"}
    state = wait_for(
        lambda: prometheus.alert_state("KiusysStoreMisconfigured"), "the alert", 60, 0.5
    )
    assert state in {"pending", "firing"}
    # Every query of the dashboard is one this Prometheus accepts.
    panels = json.loads(DASHBOARD.read_text())["panels"]
    for target in (t for panel in panels for t in panel["targets"]):
        prometheus.query(target["expr"])
