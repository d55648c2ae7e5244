"""The README's runbook against the code it drives: pinned versions agree, the image is built
for the nodes' architecture, and the teardown removes what EKS leaves behind."""

import re

from tests.kubernetes.conftest import find, render, variable_default
from tests.support.processes import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
RUNBOOK = README[README.index("## Runbook") : README.index("### Rehearse it on a laptop")]
COMMANDS = "\n".join(re.findall(r"```bash\n(.*?)```", RUNBOOK, re.DOTALL))


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


def test_metrics_server_comes_from_the_addon_not_a_url() -> None:
    assert "kubectl apply -f https://" not in COMMANDS
    addons = (REPO_ROOT / "eks-cluster" / "addons.tf").read_text()
    assert "metrics-server = null" in addons


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
