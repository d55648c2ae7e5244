"""Apply the four roots to moto in order, re-plan them, check what was made, destroy them.

The tests in this module share one applied stack and run in file order; the last one destroys it.
"""

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.kubernetes.conftest import find, render
from tests.support.aws import REGION
from tests.support.processes import REPO_ROOT, Emulator, moto_server
from tests.support.terraform import ROOTS, Workspace, load_hcl

pytestmark = pytest.mark.slow

# Resources whose plan moto keeps changing after a clean apply, and why:
# - aws_eks_node_group.this: moto invents a remote_access block (ssh key "eksKeypair").
# - aws_launch_template.node: moto echoes default tags back as tag_specifications.
# (The cluster's access and upgrade settings, which moto drops, are added back by the test
# server's EKS extras, so the cluster, its OIDC provider and the IRSA roles plan no change.)
MOTO_DRIFT = {
    'aws_eks_node_group.this["general"]',
    "aws_launch_template.node",
}


# What the runbook's default commands pass (steps 3 to 5, no OPTIONAL line): the region to every
# root, and the operator's own address to the cluster's API endpoint.
OPERATOR_CIDR = "203.0.113.7/32"
RUNBOOK_DEFAULTS: dict[str, dict[str, Any]] = {
    **{root: {"region": REGION} for root in ROOTS},
    "eks-cluster": {"region": REGION, "public_access_cidrs": [OPERATOR_CIDR]},
}

# The optional inputs, all set: a test domain in a hosted zone the test makes, one admin, and
# the GitHub repository whose workflows push and deploy.
DOMAIN = "api.kiusys.test"
REGIONAL_NAME = f"{REGION}.{DOMAIN}"
REPLICA = "eu-west-1"
ADMIN = "arn:aws:iam::123456789012:role/platform-admins"
GITHUB_REPOSITORY = "example-org/kiusys"
GITHUB_DEPLOY_ROLE = "arn:aws:iam::123456789012:role/kiusys-github-deploy"
GITHUB_ISSUER = "token.actions.githubusercontent.com"
CLUSTER_LOG_GROUP = "/aws/eks/kiusys/cluster"


@dataclass
class DefaultPath:
    """What the runbook's default path left: each root's outputs and its re-plan's changes."""

    outputs: dict[str, dict[str, Any]]
    replan_changes: dict[str, set[str]]


@dataclass
class Stack:
    workspace: Workspace
    ca_bundle: Path
    resource_counts: dict[str, int]
    default_path: DefaultPath

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.workspace.emulator.url,
            verify=str(self.ca_bundle),
        )

    def output(self, root: str, name: str) -> Any:
        return self.workspace.output(root, name)


def hosted_zone(emulator: Emulator) -> str:
    route53 = boto3.client(
        "route53", region_name=REGION, endpoint_url=emulator.url, verify=str(emulator.ca_bundle)
    )
    zone = route53.create_hosted_zone(Name="kiusys.test", CallerReference="e2e")["HostedZone"]
    return str(zone["Id"]).rsplit("/", 1)[-1]


def replan_changes(workspace: Workspace, root: str) -> set[str]:
    """The addresses that a plan of `root` would create, change or destroy."""
    plan_file = workspace.root(root) / "replan.tfplan"
    workspace.run(root, "plan", "-no-color", f"-out={plan_file}")
    plan = json.loads(workspace.run(root, "show", "-json", str(plan_file)).stdout)
    return {
        change["address"]
        for change in plan.get("resource_changes", [])
        if change["change"]["actions"] not in (["no-op"], ["read"])
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, provider_mirror: Path) -> Iterator[Stack]:
    """The four roots applied as the runbook's default path does, re-planned, then applied again
    with every optional input."""
    directory = tmp_path_factory.mktemp("terraform")
    with moto_server(cert_dir=directory / "tls") as emulator:
        assert emulator.ca_bundle is not None
        workspace = Workspace(directory / "roots", emulator)
        started = time.monotonic()
        for root in ROOTS:
            workspace.set_variables(root, RUNBOOK_DEFAULTS[root])
            workspace.init(root)
            workspace.apply(root)
        default_path = DefaultPath(
            outputs={root: workspace.outputs(root) for root in ROOTS},
            replan_changes={root: replan_changes(workspace, root) for root in ROOTS},
        )
        print(f"default path applied and re-planned in {time.monotonic() - started:.0f}s")
        optional = {
            "ecr-repo": {"github_repository": GITHUB_REPOSITORY, "replica_regions": [REPLICA]},
            "eks-cluster": {
                "domain_name": DOMAIN,
                "hosted_zone_id": hosted_zone(emulator),
                "regional_endpoint": True,
                "admin_principal_arns": [ADMIN],
                "github_repository": GITHUB_REPOSITORY,
            },
        }
        counts = {}
        for root in ROOTS:
            if root in optional:
                workspace.set_variables(root, {**RUNBOOK_DEFAULTS[root], **optional[root]})
                workspace.apply(root)
            counts[root] = len(workspace.state_resources(root))
        print(f"applied {counts} in {time.monotonic() - started:.0f}s")
        yield Stack(workspace, emulator.ca_bundle, counts, default_path)


@pytest.mark.parametrize("root", ROOTS)
def test_the_runbooks_default_path_applies_and_replans_with_no_change(
    stack: Stack, root: str
) -> None:
    changed = stack.default_path.replan_changes[root]
    allowed = MOTO_DRIFT if root == "eks-cluster" else set()
    assert changed <= allowed, f"unexpected drift: {sorted(changed - allowed)}"


def test_the_default_path_has_no_domain_and_empty_dns_outputs(stack: Stack) -> None:
    outputs = stack.default_path.outputs["eks-cluster"]
    for name in ("domain_name", "hosted_zone_id", "certificate_arn", "external_dns_role_arn"):
        assert outputs[name] == "", name
    assert outputs["certificate_validation_records"] == []
    assert "github_deploy_role_arn" not in outputs, "null: no GitHub role"


def test_configure_renders_the_deploy_from_the_default_outputs(
    stack: Stack, tmp_path: Path
) -> None:
    """Step 8 on the default path: no domain, so the runbook opts in to plain HTTP."""
    shutil.copytree(REPO_ROOT / "kubernetes", tmp_path / "kubernetes")
    outputs = {
        f"TF_OUTPUT_{name.upper()}": value
        for root in ("dynamodb", "ecr-repo", "eks-cluster")
        for name, value in stack.default_path.outputs[root].items()
        if isinstance(value, str)
    }
    result = subprocess.run(
        [str(tmp_path / "kubernetes" / "configure.sh"), "1.4.2"],
        env={**os.environ, **outputs, "SEND_API_KEYS_IN_CLEAR_TEXT": "yes"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = render(tmp_path / "build" / "deploy")
    (container,) = find(rendered, "Deployment", "kiusys-app")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == f"{outputs['TF_OUTPUT_REPOSITORY_URL']}:1.4.2"
    annotations = find(rendered, "ServiceAccount", "kiusys-app")["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"] == outputs["TF_OUTPUT_APP_ROLE_ARN"]
    service = find(rendered, "Service", "kiusys-app")
    assert [p["port"] for p in service["spec"]["ports"]] == [80]


def test_a_kubernetes_version_without_pinned_addons_is_refused_at_plan(stack: Stack) -> None:
    result = stack.workspace.run(
        "eks-cluster", "plan", "-no-color", "-var=kubernetes_version=1.99", check=False
    )
    assert result.returncode == 1
    assert "kubernetes_version has no pinned add-on versions" in result.stderr
    assert "addon_versions in addons.tf" in result.stderr


@pytest.mark.parametrize("root", ["s3-backends", "dynamodb", "ecr-repo"])
def test_replan_shows_no_changes(stack: Stack, root: str) -> None:
    result = stack.workspace.plan_changes(root)
    assert result.returncode == 0, result.stdout[-4000:]


def test_eks_cluster_replan_changes_only_what_moto_cannot_hold(stack: Stack) -> None:
    changed = replan_changes(stack.workspace, "eks-cluster")
    print(f"eks-cluster re-plan changes: {sorted(changed)}")
    assert changed <= MOTO_DRIFT, f"unexpected drift: {sorted(changed - MOTO_DRIFT)}"


def test_state_bucket_is_locked_down(stack: Stack) -> None:
    s3 = stack.client("s3")
    bucket = stack.output("s3-backends", "bucket_name")
    assert bucket == f"kiusys-tfstate-123456789012-{REGION}"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    blocks = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert blocks == dict.fromkeys(
        ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True
    )
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    (statement,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90


def test_each_root_keeps_its_state_in_the_bucket_without_lock_tables(stack: Stack) -> None:
    s3 = stack.client("s3")
    bucket = stack.output("s3-backends", "bucket_name")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert keys == {f"{root}/terraform.tfstate" for root in ROOTS[1:]}, "no .tflock left behind"
    assert "use_lockfile = true" in stack.output("s3-backends", "backend_config")
    tables = stack.client("dynamodb").list_tables()["TableNames"]
    assert sorted(tables) == ["flights-db", "flights-db-idempotency"]


@pytest.mark.parametrize(
    ("table", "key", "ttl", "index"),
    [
        ("flights-db", "flight-route", None, "airline"),
        ("flights-db-idempotency", "idempotency-key", "expires-at", None),
    ],
)
def test_tables_match_the_service(
    stack: Stack, table: str, key: str, ttl: str | None, index: str | None
) -> None:
    dynamodb = stack.client("dynamodb")
    described = dynamodb.describe_table(TableName=table)["Table"]
    assert described["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
    keys = [key] if index is None else [key, index]
    assert sorted(a["AttributeName"] for a in described["AttributeDefinitions"]) == sorted(keys)
    assert {a["AttributeType"] for a in described["AttributeDefinitions"]} == {"S"}
    indexes = [
        (i["IndexName"], i["KeySchema"], i["Projection"]["ProjectionType"])
        for i in described.get("GlobalSecondaryIndexes", [])
    ]
    assert indexes == (
        []
        if index is None
        else [(index, [{"AttributeName": index, "KeyType": "HASH"}], "KEYS_ONLY")]
    )
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert described["DeletionProtectionEnabled"] is True
    assert described["SSEDescription"]["Status"] == "ENABLED"
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    ttl_description = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if ttl is None:
        assert ttl_description["TimeToLiveStatus"] == "DISABLED"
    else:
        assert ttl_description == {"TimeToLiveStatus": "ENABLED", "AttributeName": ttl}


def test_repository_is_immutable_scanned_and_encrypted(stack: Stack) -> None:
    ecr = stack.client("ecr")
    (repository,) = ecr.describe_repositories(repositoryNames=["kiusys-app"])["repositories"]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["encryptionConfiguration"]["encryptionType"] == "KMS"
    policy = json.loads(
        ecr.get_lifecycle_policy(repositoryName="kiusys-app")["lifecyclePolicyText"]
    )
    assert {r["selection"]["tagStatus"] for r in policy["rules"]} == {"untagged", "tagged"}
    assert stack.output("ecr-repo", "repository_url").endswith("/kiusys-app")


def trust_conditions(iam: Any, role: str, issuer: str = "") -> dict[str, str]:
    """The role's one web-identity trust statement, from the OIDC provider of `issuer` (any, if
    empty), as {claim: required value}."""
    document = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    (statement,) = document["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].startswith(
        f"arn:aws:iam::123456789012:oidc-provider/{issuer}"
    )
    (equals,) = statement["Condition"].values()
    return {key.rsplit(":", 1)[1]: value for key, value in equals.items()}


def inline_policy(iam: Any, role: str) -> dict[str, Any]:
    """The role's one inline policy document."""
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document  # type: ignore[no-any-return]


def test_app_role_is_pinned_to_the_app_service_account(stack: Stack) -> None:
    iam = stack.client("iam")
    assert stack.output("eks-cluster", "app_role_arn").endswith(":role/kiusys-app")
    assert trust_conditions(iam, "kiusys-app") == {
        "sub": "system:serviceaccount:kiusys:kiusys-app",
        "aud": "sts.amazonaws.com",
    }
    assert trust_conditions(iam, "kiusys-cluster-autoscaler")["sub"] == (
        "system:serviceaccount:kube-system:cluster-autoscaler"
    )


def test_app_role_allows_exactly_the_calls_the_service_makes(stack: Stack) -> None:
    iam = stack.client("iam")
    document = inline_policy(iam, "kiusys-app")
    table_arn = stack.output("dynamodb", "table_arn")
    keys_arn = stack.output("dynamodb", "idempotency_table_arn")
    # IAM writes a statement's one action as a string, and several as a list.
    granted = {
        (statement["Resource"], tuple(sorted(as_list(statement["Action"]))))
        for statement in document["Statement"]
    }
    assert granted == {
        (
            table_arn,
            (
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ),
        ),
        (f"{table_arn}/index/airline", ("dynamodb:Query",)),
        (keys_arn, ("dynamodb:GetItem", "dynamodb:PutItem")),
    }
    assert iam.list_attached_role_policies(RoleName="kiusys-app")["AttachedPolicies"] == []


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_node_role_holds_only_the_worker_policies(stack: Stack) -> None:
    iam = stack.client("iam")
    attached = iam.list_attached_role_policies(RoleName="kiusys-node")["AttachedPolicies"]
    assert {p["PolicyName"] for p in attached} == {
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEKS_CNI_Policy",
        "AmazonEKSWorkerNodePolicy",
    }
    assert iam.list_role_policies(RoleName="kiusys-node")["PolicyNames"] == []


def test_cluster_is_logged_encrypted_and_open_only_to_the_operator(stack: Stack) -> None:
    cluster = stack.client("eks").describe_cluster(name="kiusys")["cluster"]
    enabled = [t for s in cluster["logging"]["clusterLogging"] if s["enabled"] for t in s["types"]]
    assert sorted(enabled) == [
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    ]
    assert cluster["encryptionConfig"][0]["resources"] == ["secrets"]
    endpoint = cluster["resourcesVpcConfig"]
    assert (endpoint["endpointPublicAccess"], endpoint["publicAccessCidrs"]) == (
        True,
        [OPERATOR_CIDR],
    )
    assert endpoint["endpointPrivateAccess"] is True
    assert cluster["version"] == "1.35"


def test_node_groups_scale_in_private_subnets(stack: Stack) -> None:
    eks = stack.client("eks")
    private = set(stack.output("eks-cluster", "private_subnet_ids"))
    sizes = {}
    for name in eks.list_nodegroups(clusterName="kiusys")["nodegroups"]:
        group = eks.describe_nodegroup(clusterName="kiusys", nodegroupName=name)["nodegroup"]
        assert set(group["subnets"]) == private
        scaling = group["scalingConfig"]
        sizes[name] = (scaling["minSize"], scaling["maxSize"], scaling["desiredSize"])
    assert sizes == {"general": (2, 4, 2)}


def test_vpc_spans_three_zones_with_tagged_subnets(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    vpc_id = stack.output("eks-cluster", "vpc_id")
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    by_role: dict[str, set[str]] = {}
    for subnet in subnets:
        tags = {t["Key"]: t["Value"] for t in subnet.get("Tags", [])}
        role = "public" if tags.get("kubernetes.io/role/elb") == "1" else "private"
        if role == "private":
            assert tags["kubernetes.io/role/internal-elb"] == "1"
        by_role.setdefault(role, set()).add(subnet["AvailabilityZone"])
    assert len(by_role["public"]) == len(by_role["private"]) == 3
    gateways = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    assert len(gateways["NatGateways"]) == 1
    (flow_log,) = ec2.describe_flow_logs()["FlowLogs"]
    assert flow_log["ResourceId"] == vpc_id
    assert flow_log["TrafficType"] == "REJECT", "refused traffic only, by default"
    (default_group,) = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"]
    assert default_group["IpPermissions"] == default_group["IpPermissionsEgress"] == []


def test_addons_are_managed_at_their_pins_and_the_network_policy_agent_is_on(
    stack: Stack,
) -> None:
    eks = stack.client("eks")
    (addons,) = load_hcl(REPO_ROOT / "eks-cluster" / "addons.tf")["locals"]
    pins = dict(addons["addon_versions"]["1.35"])
    # metrics-server's pin is its Helm chart's version, for the runbook's helm command.
    assert stack.output("eks-cluster", "metrics_server_chart_version") == pins.pop("metrics-server")
    installed = {
        name: eks.describe_addon(clusterName="kiusys", addonName=name)["addon"]
        for name in eks.list_addons(clusterName="kiusys")["addons"]
    }
    assert {name: addon["addonVersion"] for name, addon in installed.items()} == pins
    cni = installed["vpc-cni"]
    assert json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_cluster_stays_in_standard_support_with_named_admins(stack: Stack) -> None:
    eks = stack.client("eks")
    cluster = eks.describe_cluster(name="kiusys")["cluster"]
    assert cluster["upgradePolicy"] == {"supportType": "STANDARD"}
    entries = eks.list_access_entries(clusterName="kiusys")["accessEntries"]
    assert sorted(entries) == sorted([ADMIN, GITHUB_DEPLOY_ROLE])
    (policy,) = eks.list_associated_access_policies(clusterName="kiusys", principalArn=ADMIN)[
        "associatedAccessPolicies"
    ]
    assert policy["policyArn"].endswith(":cluster-access-policy/AmazonEKSClusterAdminPolicy")
    assert policy["accessScope"]["type"] == "cluster"


def test_github_can_push_only_from_main_to_the_one_repository(stack: Stack) -> None:
    iam = stack.client("iam")
    (github,) = [
        provider["Arn"]
        for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        if provider["Arn"].endswith(f"/{GITHUB_ISSUER}")
    ]
    issuer = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=github)
    assert issuer["ClientIDList"] == ["sts.amazonaws.com"]
    assert stack.output("ecr-repo", "github_push_role_arn").endswith(":role/kiusys-app-github-push")
    assert trust_conditions(iam, "kiusys-app-github-push", GITHUB_ISSUER) == {
        "aud": "sts.amazonaws.com",
        "sub": f"repo:{GITHUB_REPOSITORY}:ref:refs/heads/main",
    }
    grants = {
        statement["Resource"]: set(statement["Action"])
        if isinstance(statement["Action"], list)
        else {statement["Action"]}
        for statement in inline_policy(iam, "kiusys-app-github-push")["Statement"]
    }
    repository = stack.output("ecr-repo", "repository_arn")
    assert grants["*"] == {"ecr:GetAuthorizationToken"}
    assert "ecr:PutImage" in grants[repository]
    assert set(grants) == {"*", repository}


def test_github_deploys_only_from_production_into_the_app_namespace(stack: Stack) -> None:
    iam = stack.client("iam")
    assert stack.output("eks-cluster", "github_deploy_role_arn") == GITHUB_DEPLOY_ROLE
    assert trust_conditions(iam, "kiusys-github-deploy", GITHUB_ISSUER) == {
        "aud": "sts.amazonaws.com",
        "sub": f"repo:{GITHUB_REPOSITORY}:environment:production",
    }
    (statement,) = inline_policy(iam, "kiusys-github-deploy")["Statement"]
    assert statement["Action"] == "eks:DescribeCluster"
    eks = stack.client("eks")
    assert statement["Resource"] == eks.describe_cluster(name="kiusys")["cluster"]["arn"]
    (policy,) = eks.list_associated_access_policies(
        clusterName="kiusys", principalArn=GITHUB_DEPLOY_ROLE
    )["associatedAccessPolicies"]
    assert policy["policyArn"].endswith(":cluster-access-policy/AmazonEKSEditPolicy")
    assert policy["accessScope"] == {"type": "namespace", "namespaces": ["kiusys"]}


def test_dynamodb_is_reached_through_a_gateway_endpoint_for_two_tables(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    vpc_id = stack.output("eks-cluster", "vpc_id")
    (endpoint,) = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
        "VpcEndpoints"
    ]
    assert endpoint["VpcEndpointId"] == stack.output("eks-cluster", "dynamodb_endpoint_id")
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert endpoint["ServiceName"] == f"com.amazonaws.{REGION}.dynamodb"
    private_subnets = set(stack.output("eks-cluster", "private_subnet_ids"))
    tables = ec2.describe_route_tables(RouteTableIds=endpoint["RouteTableIds"])["RouteTables"]
    routed = {a["SubnetId"] for t in tables for a in t["Associations"] if "SubnetId" in a}
    assert routed == private_subnets
    policy = json.loads(endpoint["PolicyDocument"])
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {
        stack.output("dynamodb", "table_arn"),
        f"{stack.output('dynamodb', 'table_arn')}/index/airline",
        stack.output("dynamodb", "idempotency_table_arn"),
    }
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert {"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:Query"} <= actions
    assert "dynamodb:DescribeTable" in actions
    assert not [a for a in actions if "*" in a]


def test_load_balancer_controller_role_is_pinned_to_its_service_account(stack: Stack) -> None:
    iam = stack.client("iam")
    arn = stack.output("eks-cluster", "load_balancer_controller_role_arn")
    role = arn.rsplit("/", 1)[1]
    assert trust_conditions(iam, role)["sub"] == (
        "system:serviceaccount:kube-system:aws-load-balancer-controller"
    )
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    by_sid = {statement["Sid"]: statement for statement in document["Statement"]}
    # Load balancers are made only with the cluster's tag, and changed only when they carry it.
    assert by_sid["CreateTaggedLoadBalancers"]["Condition"] == {
        "Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"}
    }
    assert by_sid["ChangeOwnLoadBalancers"]["Condition"] == {
        "Null": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}
    }


def test_the_domain_has_an_issued_certificate_and_an_external_dns_role(stack: Stack) -> None:
    certificate_arn = stack.output("eks-cluster", "certificate_arn")
    certificate = stack.client("acm").describe_certificate(CertificateArn=certificate_arn)[
        "Certificate"
    ]
    assert (certificate["DomainName"], certificate["Status"]) == (DOMAIN, "ISSUED")
    # AWS lists the domain among the alternative names too; moto lists only the others.
    assert {DOMAIN, *certificate["SubjectAlternativeNames"]} == {DOMAIN, REGIONAL_NAME}
    options = certificate["DomainValidationOptions"]
    assert {option["DomainName"] for option in options} == {DOMAIN, REGIONAL_NAME}
    route53 = stack.client("route53")
    (zone,) = route53.list_hosted_zones()["HostedZones"]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    cnames = {r["Name"] for r in records if r["Type"] == "CNAME"}
    assert {option["ResourceRecord"]["Name"] for option in options} <= cnames
    role = stack.output("eks-cluster", "external_dns_role_arn").rsplit("/", 1)[1]
    assert trust_conditions(stack.client("iam"), role)["sub"] == (
        "system:serviceaccount:kube-system:external-dns"
    )
    assert stack.output("eks-cluster", "domain_name") == DOMAIN


def test_a_regional_endpoint_is_health_checked_on_its_own_name(stack: Stack) -> None:
    check_id = stack.output("eks-cluster", "health_check_id")
    config = stack.client("route53").get_health_check(HealthCheckId=check_id)["HealthCheck"]
    checked = config["HealthCheckConfig"]
    assert (checked["FullyQualifiedDomainName"], checked["Type"], checked["Port"]) == (
        REGIONAL_NAME,
        "HTTPS",
        443,
    )
    assert (checked["ResourcePath"], checked["EnableSNI"]) == ("/regionz", True)
    assert stack.output("eks-cluster", "regional_hostname") == REGIONAL_NAME


def test_images_are_replicated_to_the_replica_region(stack: Stack) -> None:
    registry = stack.client("ecr").describe_registry()
    (rule,) = registry["replicationConfiguration"]["rules"]
    assert [d["region"] for d in rule["destinations"]] == [REPLICA]
    assert rule["repositoryFilters"] == [{"filter": "kiusys-app", "filterType": "PREFIX_MATCH"}]


def test_destroy_in_reverse_order_leaves_nothing(stack: Stack) -> None:
    """The README's teardown: each root in reverse order, protections turned off explicitly."""
    workspace = stack.workspace
    workspace.destroy("eks-cluster")
    # EKS writes its control-plane log group again while the cluster is deleted; the README
    # deletes it after the destroy, and then the cluster root applies again from nothing.
    logs = stack.client("logs")
    logs.create_log_group(logGroupName=CLUSTER_LOG_GROUP)
    logs.delete_log_group(logGroupName=CLUSTER_LOG_GROUP)
    workspace.apply("eks-cluster")
    workspace.destroy("eks-cluster")
    workspace.destroy("ecr-repo")
    workspace.apply("dynamodb", "deletion_protection=false")
    workspace.destroy("dynamodb", "deletion_protection=false")
    workspace.apply("s3-backends", "force_destroy=true")
    workspace.destroy("s3-backends", "force_destroy=true")

    assert stack.client("dynamodb").list_tables()["TableNames"] == []
    assert stack.client("s3").list_buckets()["Buckets"] == []
    assert stack.client("ecr").describe_repositories()["repositories"] == []
    assert stack.client("eks").list_clusters()["clusters"] == []
    roles = [r["RoleName"] for r in stack.client("iam").list_roles()["Roles"]]
    assert not [r for r in roles if r.startswith("kiusys")]
    vpcs = stack.client("ec2").describe_vpcs()["Vpcs"]
    assert [v for v in vpcs if not v["IsDefault"]] == []
    groups = stack.client("logs").describe_log_groups(logGroupNamePrefix="/aws/eks/")
    assert groups["logGroups"] == []
