"""The runbook (docs/operations.md) against the code it drives: pinned versions agree, the image is built
for the nodes' architecture, and the teardown removes what EKS leaves behind."""

import re
import subprocess
from pathlib import Path

import pytest

from kiusys_app.clients import Clients, Permission
from tests.kubernetes.conftest import find, render, variable_default
from tests.support.processes import REPO_ROOT

OPERATIONS = (REPO_ROOT / "docs" / "operations.md").read_text()
RUNBOOK = OPERATIONS[OPERATIONS.index("## Runbook") : OPERATIONS.index("\n## Settings")]
BLOCKS = re.findall(r"```bash\n(.*?)```", RUNBOOK, re.DOTALL)
COMMANDS = "\n".join(BLOCKS)

# A shell variable set (`NAME=`, `NAME+=`, `export NAME=`) or expanded (`$NAME`, `${NAME…}`).
_ASSIGNED = re.compile(r"(?:^|[\s;(|&])(?:export\s+)?([A-Za-z_]\w*)\+?=")
_EXPANDED = re.compile(r"\$\{?([A-Za-z_]\w*)")
_LOOPED = re.compile(r"\bfor\s+([A-Za-z_]\w*)\s+in\b")  # `for NAME in …` sets NAME too


def used_before_set(blocks: list[str]) -> list[str]:
    """The variables that a line of `blocks` expands before any earlier line has set them."""
    assigned: set[str] = set()
    early = []
    for line in "\n".join(blocks).splitlines():
        code = re.sub(r"'[^']*'", "''", line.split("# ", 1)[0])  # single quotes expand nothing
        early += [name for name in _EXPANDED.findall(code) if name not in assigned]
        assigned.update(_ASSIGNED.findall(code), _LOOPED.findall(code))
    return early


def test_the_runbook_installs_the_load_balancer_controller_release_its_policy_comes_from() -> None:
    (chart,) = re.findall(
        r"helm upgrade --install aws-load-balancer-controller .*?--version (\S+)",
        COMMANDS,
        re.DOTALL,
    )
    policy_source = (REPO_ROOT / "eks-cluster" / "load_balancer_controller.tf").read_text()
    assert f"iam_policy.json at v{chart})" in policy_source


def test_the_runbook_names_the_helm_release_the_installer_pins() -> None:
    text = (REPO_ROOT / "install_helm.sh").read_text()
    (pinned,) = re.findall(r'^readonly default_version="(v[\d.]+)"$', text, re.MULTILINE)
    assert f"Helm release ({pinned})" in RUNBOOK


def test_the_image_is_built_for_the_nodes_architecture() -> None:
    groups = variable_default("eks-cluster", "node_groups")
    types = {t for group in groups.values() for t in group["instance_types"]}
    # Graviton families (a "g" after the generation digit) are arm64; these must not be.
    assert not [t for t in types if re.match(r"^[a-z]+\d+g", t)], types
    assert "docker buildx build --platform linux/amd64" in COMMANDS


def test_the_teardown_deletes_the_log_group_eks_writes_again_after_the_destroy() -> None:
    destroy = COMMANDS.index("terraform -chdir=eks-cluster destroy")
    cleanup = COMMANDS.index(
        'aws logs delete-log-group --log-group-name "/aws/eks/${CLUSTER}/cluster"'
    )
    assert destroy < cleanup
    cluster_tf = (REPO_ROOT / "eks-cluster" / "cluster.tf").read_text()
    assert 'name              = "/aws/eks/${var.cluster_name}/cluster"' in cluster_tf


def test_the_service_goes_before_the_controllers_that_remove_its_load_balancer() -> None:
    service = COMMANDS.index("kubectl -n kiusys delete service kiusys-app --wait=true")
    controller = COMMANDS.index("helm uninstall aws-load-balancer-controller")
    assert service < controller < COMMANDS.index("terraform -chdir=eks-cluster destroy")


def blocks_of(section: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", section, re.DOTALL)


# The way up (steps 1 to 10), then each way on from there on its own: an operator who upgrades
# has not destroyed first.
_UP, _AFTER = RUNBOOK.split("### 11. Destroy")
WAYS_ON = {"destroy": _AFTER.split("### Upgrading")[0], "upgrade": _AFTER.split("### Upgrading")[1]}


@pytest.mark.parametrize("way_on", WAYS_ON)
def test_every_variable_is_set_before_the_runbook_uses_it(way_on: str) -> None:
    assert used_before_set(blocks_of(_UP) + blocks_of(WAYS_ON[way_on])) == []


def test_a_variable_used_before_it_is_set_is_found() -> None:
    assert used_before_set(['echo "${CLUSTER}" $TAG', 'CLUSTER="$(x)"', "echo ${CLUSTER}"]) == [
        "CLUSTER",
        "TAG",
    ]
    assert used_before_set(["export A=1 B+=(x)", "echo \"${A}${B[@]}\" '${C}'  # ${D}"]) == []


def test_metrics_server_comes_from_the_chart_that_eks_cluster_pins() -> None:
    assert "kubectl apply -f https://" not in COMMANDS
    (install,) = re.findall(r"helm upgrade --install metrics-server .*?--wait", COMMANDS, re.DOTALL)
    assert "--repo https://kubernetes-sigs.github.io/metrics-server/" in install
    assert "output -raw metrics_server_chart_version" in install
    outputs = (REPO_ROOT / "eks-cluster" / "outputs.tf").read_text()
    assert 'value       = local.pinned_addons["metrics-server"]' in outputs
    assert COMMANDS.index("helm uninstall metrics-server") < COMMANDS.index(
        "terraform -chdir=eks-cluster destroy"
    )


def test_the_runbook_default_path_opts_in_to_plain_http_only_without_a_domain() -> None:
    opt_in = '[ -n "${DOMAIN}" ] || export SEND_API_KEYS_IN_CLEAR_TEXT=yes'
    assert COMMANDS.index("DOMAIN=") < COMMANDS.index(opt_in) < COMMANDS.index("configure.sh")
    assert 'if [ -n "${DOMAIN}" ]; then BASE="https://${DOMAIN}"; else BASE="http://${LB}"' in (
        COMMANDS
    )


def test_the_clients_secret_is_created_once_and_kept_on_a_second_run() -> None:
    guard = COMMANDS.index("if ! kubectl -n kiusys get secret kiusys-clients >/dev/null 2>&1; then")
    create = "kubectl -n kiusys create secret generic kiusys-clients --from-file=clients.toml\n"
    assert guard < COMMANDS.index(create) < COMMANDS.index("fi\n", guard)
    assert (
        "make -s new-key NAME=operator AIRLINES='*' CAN='record check usage' 2>&1 >>clients.toml"
        in (COMMANDS)
    )


def test_the_first_deploy_creates_the_pods_after_their_target_group_binding() -> None:
    label = "kiusys.io/after-target-group"
    first = COMMANDS.index(f"kubectl apply -k build/deploy --selector '{label}!=true'")
    binding = COMMANDS.index("kubectl -n kiusys get targetgroupbindings", first)
    everything = COMMANDS.index("kubectl apply -k build/deploy\n", binding)
    assert first < binding < everything < COMMANDS.index("readinessGates", everything)
    rendered = render(REPO_ROOT / "kubernetes")
    held_back = [m["kind"] for m in rendered if m["metadata"]["labels"].get(label) == "true"]
    assert held_back == ["Deployment"], "only the app's pods wait for the binding"
    assert find(rendered, "Service", "kiusys-app")["metadata"]["labels"].get(label) is None


def test_the_runbooks_new_key_line_makes_a_key_and_its_entry(tmp_path: Path) -> None:
    """The runbook's own line, run as it stands but with `clients.toml` in a scratch folder."""
    (line,) = [line for line in COMMANDS.splitlines() if line.strip().startswith('KEY="$(make')]
    command = line.strip().replace("make -s", f"make -s -C {REPO_ROOT}", 1)
    script = f'{command}\necho "$KEY"\n'
    made = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key = made.stdout.strip()
    assert key.startswith("kiu_")
    client = Clients.from_file(tmp_path / "clients.toml").find(key)
    assert client is not None
    assert client.name == "operator"
    assert client.can == set(Permission)


def test_names_come_from_terraform_or_the_cloud_never_typed_by_hand() -> None:
    """The repository and node group names are read, as every other name is; the image
    clean-up goes page by page, as BatchDeleteImage takes at most 100 ids a call."""
    assert "--repository-name kiusys-app" not in COMMANDS
    assert "--nodegroup-name general" not in COMMANDS
    assert "aws eks list-nodegroups --cluster-name" in COMMANDS
    loop = COMMANDS[
        COMMANDS.index("while IMAGES=") : COMMANDS.index("done", COMMANDS.index("while IMAGES="))
    ]
    assert "--no-paginate" in loop
    assert "batch-delete-image" in loop


def test_an_empty_array_is_expanded_so_that_bash_3_2_accepts_it_under_set_u() -> None:
    """bash before 4.4 (macOS's 3.2) calls `"${A[@]}"` of an empty array unbound."""
    assert re.findall(r'(?<!\+)"\$\{OPTIONAL\[@\]\}"', COMMANDS) == [], "bare expansion"
    assert '${OPTIONAL[@]+"${OPTIONAL[@]}"}' in COMMANDS
