"""`dynamodb/` with a replica region, applied to moto with the test server's global tables
(`tests/support/global_tables.py`), re-planned, read back in both regions, and destroyed."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.aws import KEYS_TABLE, REGION, TABLE, create_tables
from tests.support.processes import moto_server
from tests.support.terraform import Workspace

pytestmark = pytest.mark.slow

REPLICA = "eu-west-1"
VARIABLES = {"region": REGION, "replica_regions": [REPLICA]}


@pytest.fixture(scope="module")
def replicated(
    tmp_path_factory: pytest.TempPathFactory, provider_mirror: Path
) -> Iterator[tuple[Workspace, dict[str, Any]]]:
    """The state bucket and both tables with a replica in REPLICA; a boto3 client per region."""
    directory = tmp_path_factory.mktemp("global-tables")
    with moto_server(cert_dir=directory / "tls") as emulator:
        workspace = Workspace(directory / "roots", emulator)
        for root, variables in (("s3-backends", {"region": REGION}), ("dynamodb", VARIABLES)):
            workspace.set_variables(root, variables)
            workspace.init(root)
            workspace.apply(root)
        clients = {
            region: boto3.client(
                "dynamodb",
                region_name=region,
                endpoint_url=emulator.url,
                verify=str(emulator.ca_bundle),
            )
            for region in (REGION, REPLICA)
        }
        yield workspace, clients


def test_a_replica_region_replans_with_no_change(
    replicated: tuple[Workspace, dict[str, Any]],
) -> None:
    workspace, _ = replicated
    plan = workspace.plan_changes("dynamodb")
    assert plan.returncode == 0, plan.stdout[-3000:]


@pytest.mark.parametrize("table", [TABLE, KEYS_TABLE])
def test_each_table_has_an_encrypted_replica_with_its_stream_and_recovery(
    replicated: tuple[Workspace, dict[str, Any]], table: str
) -> None:
    _, clients = replicated
    home = clients[REGION].describe_table(TableName=table)["Table"]
    assert [(r["RegionName"], r["ReplicaStatus"]) for r in home["Replicas"]] == [
        (REPLICA, "ACTIVE")
    ]
    assert home["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    for client in clients.values():
        described = client.describe_table(TableName=table)["Table"]
        assert described["SSEDescription"]["Status"] == "ENABLED"
        backups = client.describe_continuous_backups(TableName=table)
        recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"
    replica = clients[REPLICA].describe_table(TableName=table)["Table"]
    assert [r["RegionName"] for r in replica["Replicas"]] == [REGION]


def test_the_replicas_go_with_the_tables(replicated: tuple[Workspace, dict[str, Any]]) -> None:
    workspace, clients = replicated
    workspace.apply("dynamodb", "deletion_protection=false")
    workspace.destroy("dynamodb", "deletion_protection=false")
    assert [client.list_tables()["TableNames"] for client in clients.values()] == [[], []]


def test_the_emulator_makes_a_replica_only_of_a_table_with_the_stream_and_lists_it() -> None:
    with moto_server() as emulator:
        clients = {
            region: boto3.client("dynamodb", region_name=region, endpoint_url=emulator.url)
            for region in (REGION, REPLICA)
        }
        home = clients[REGION]
        create_tables(home)
        replica = [{"Create": {"RegionName": REPLICA}}]
        with pytest.raises(home.exceptions.ClientError, match="NEW_AND_OLD_IMAGES"):
            home.update_table(TableName=TABLE, ReplicaUpdates=replica)
        assert clients[REPLICA].list_tables()["TableNames"] == []
        stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        home.update_table(TableName=TABLE, StreamSpecification=stream)
        home.update_table(TableName=TABLE, ReplicaUpdates=replica)
        listed = {
            region: [
                r["RegionName"] for r in client.describe_table(TableName=TABLE)["Table"]["Replicas"]
            ]
            for region, client in clients.items()
        }
        assert listed == {REGION: [REPLICA], REPLICA: [REGION]}
        assert "Replicas" not in home.describe_table(TableName=KEYS_TABLE)["Table"]
        home.update_table(TableName=TABLE, ReplicaUpdates=[{"Delete": {"RegionName": REPLICA}}])
        assert "Replicas" not in home.describe_table(TableName=TABLE)["Table"]
        assert clients[REPLICA].list_tables()["TableNames"] == []
