"""The EKS calls that the test emulator adds to moto (tests/support/eks_extras.py), driven
with boto3 as Terraform's provider drives them: add-ons, access entries and their policies, and
the cluster's access and upgrade settings."""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.aws import REGION
from tests.support.eks_extras import CATALOGUE
from tests.support.processes import moto_server

ADMIN = "arn:aws:iam::123456789012:role/platform-admins"
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


@pytest.fixture(scope="module")
def eks() -> Iterator[Any]:
    with moto_server() as emulator:
        client = boto3.client("eks", region_name=REGION, endpoint_url=emulator.url)
        client.create_cluster(
            name="kiusys",
            roleArn="arn:aws:iam::123456789012:role/kiusys-cluster",
            resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]},
            accessConfig={
                "authenticationMode": "API_AND_CONFIG_MAP",
                "bootstrapClusterCreatorAdminPermissions": True,
            },
            upgradePolicy={"supportType": "STANDARD"},
        )
        yield client


def test_the_cluster_keeps_its_access_and_upgrade_settings(eks: Any) -> None:
    cluster = eks.describe_cluster(name="kiusys")["cluster"]
    assert cluster["accessConfig"]["authenticationMode"] == "API_AND_CONFIG_MAP"
    assert cluster["upgradePolicy"] == {"supportType": "STANDARD"}


def test_addon_versions_are_offered_for_the_cluster_version(eks: Any) -> None:
    (offered,) = eks.describe_addon_versions(addonName="coredns", kubernetesVersion="1.35")[
        "addons"
    ]
    (version,) = offered["addonVersions"]
    assert version["addonVersion"] == CATALOGUE["coredns"]
    assert version["compatibilities"][0]["clusterVersion"] == "1.35"


def test_an_addon_lives_through_create_update_and_delete(eks: Any) -> None:
    created = eks.create_addon(
        clusterName="kiusys",
        addonName="vpc-cni",
        addonVersion=CATALOGUE["vpc-cni"],
        configurationValues='{"enableNetworkPolicy":"true"}',
    )["addon"]
    assert created["status"] == "ACTIVE"
    eks.update_addon(
        clusterName="kiusys",
        addonName="vpc-cni",
        configurationValues='{"enableNetworkPolicy":"false"}',
    )
    described = eks.describe_addon(clusterName="kiusys", addonName="vpc-cni")["addon"]
    assert described["configurationValues"] == '{"enableNetworkPolicy":"false"}'
    assert eks.list_addons(clusterName="kiusys")["addons"] == ["vpc-cni"]
    eks.delete_addon(clusterName="kiusys", addonName="vpc-cni")
    with pytest.raises(ClientError) as gone:
        eks.describe_addon(clusterName="kiusys", addonName="vpc-cni")
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_an_access_entry_carries_its_policy_until_deleted(eks: Any) -> None:
    eks.create_access_entry(clusterName="kiusys", principalArn=ADMIN, type="STANDARD")
    eks.associate_access_policy(
        clusterName="kiusys",
        principalArn=ADMIN,
        policyArn=CLUSTER_ADMIN_POLICY,
        accessScope={"type": "cluster"},
    )
    entry = eks.describe_access_entry(clusterName="kiusys", principalArn=ADMIN)["accessEntry"]
    assert entry["type"] == "STANDARD"
    (policy,) = eks.list_associated_access_policies(clusterName="kiusys", principalArn=ADMIN)[
        "associatedAccessPolicies"
    ]
    assert (policy["policyArn"], policy["accessScope"]["type"]) == (CLUSTER_ADMIN_POLICY, "cluster")
    eks.disassociate_access_policy(
        clusterName="kiusys", principalArn=ADMIN, policyArn=CLUSTER_ADMIN_POLICY
    )
    assert not eks.list_associated_access_policies(clusterName="kiusys", principalArn=ADMIN)[
        "associatedAccessPolicies"
    ]
    eks.delete_access_entry(clusterName="kiusys", principalArn=ADMIN)
    with pytest.raises(ClientError) as gone:
        eks.describe_access_entry(clusterName="kiusys", principalArn=ADMIN)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_other_services_still_reach_moto(eks: Any) -> None:
    endpoint = eks.meta.endpoint_url
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    s3.create_bucket(Bucket="still-moto")
    assert "still-moto" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
