"""Global-table replicas, which moto lacks, served in front of it.

moto 5's UpdateTable drops `ReplicaUpdates`, so Terraform's `replica` block waits for a replica
that never becomes ACTIVE. This WSGI middleware answers an UpdateTable that carries them itself:
a `Create` makes the table, with the source's key schema, billing mode, stream and
encryption, in the replica's region of the same moto (ACTIVE at once; items are not copied: the service's tests
replicate with `tests.support.replicator`); a `Delete` deletes it there. DescribeTable, in any
region of the group, then lists the other regions' replicas as the API does (`Replicas`, with
`ReplicaStatus` and `GlobalTableVersion` 2019.11.21). As AWS does, a replica needs the source's
stream with NEW_AND_OLD_IMAGES ("Global tables: requirements"). Everything else goes to moto.

Only DynamoDB's JSON calls (an `X-Amz-Target` of DynamoDB_20120810) are looked at.
"""

import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_TARGET = "DynamoDB_20120810."
_SCOPE = re.compile(r"Credential=[^/]+/[0-9]+/(?P<region>[^/]+)/dynamodb/aws4_request")
VERSION = "2019.11.21"


class GlobalTables:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        # Table name -> the regions that hold a replica of it (the source's included).
        self.groups: dict[str, set[str]] = {}

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not target.startswith(_TARGET) or scope is None:
            return self.app(environ, start_response)
        action, region = target.removeprefix(_TARGET), scope["region"]
        body = _body(environ)
        if action == "UpdateTable" and "ReplicaUpdates" in body:
            return self._update(environ, start_response, region, body)
        if action == "DescribeTable" and body.get("TableName") in self.groups:
            status, answer = self._call(environ, region, "DescribeTable", body)
            if status == 200:
                answer["Table"] = self._with_replicas(answer["Table"], region)
            return _json(start_response, status, answer)
        if action == "DeleteTable" and body.get("TableName") in self.groups:
            # The last replica's table can go; a replica's goes through UpdateTable.
            regions = self.groups[body["TableName"]]
            if regions - {region}:
                return _error(start_response, "a replica is deleted through UpdateTable")
            del self.groups[body["TableName"]]
        return self.app(environ, start_response)

    def _update(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        region: str,
        body: dict[str, Any],
    ) -> Iterable[bytes]:
        name = body["TableName"]
        status, described = self._call(environ, region, "DescribeTable", {"TableName": name})
        if status != 200:
            return _json(start_response, status, described)
        table = described["Table"]
        group = self.groups.setdefault(name, {region})
        for update in body["ReplicaUpdates"]:
            if "Create" in update:
                stream = table.get("StreamSpecification", {})
                if not stream.get("StreamEnabled") or stream.get("StreamViewType") != (
                    "NEW_AND_OLD_IMAGES"
                ):
                    return _error(
                        start_response,
                        "a replica needs the table's stream with NEW_AND_OLD_IMAGES",
                    )
                replica = update["Create"]["RegionName"]
                create = _copy_of(table, update["Create"].get("KMSMasterKeyId"))
                created, answer = self._call(environ, replica, "CreateTable", create)
                if created != 200:
                    return _json(start_response, created, answer)
                group.add(replica)
            elif "Delete" in update:
                replica = update["Delete"]["RegionName"]
                deleted, answer = self._call(environ, replica, "DeleteTable", {"TableName": name})
                if deleted != 200:
                    return _json(start_response, deleted, answer)
                group.discard(replica)
        if group == {region}:
            del self.groups[name]
        return _json(start_response, 200, {"TableDescription": self._with_replicas(table, region)})

    def _with_replicas(self, table: dict[str, Any], region: str) -> dict[str, Any]:
        others = sorted(self.groups.get(table["TableName"], set()) - {region})
        if not others:
            return table
        replicas = [{"RegionName": other, "ReplicaStatus": "ACTIVE"} for other in others]
        return {**table, "Replicas": replicas, "GlobalTableVersion": VERSION}

    def _call(
        self, environ: dict[str, Any], region: str, action: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """`action` as moto answers it in `region` (moto reads the region from the signature,
        and checks no signature)."""
        raw = json.dumps(body).encode()
        authorization = _SCOPE.sub(
            lambda match: match[0].replace(f"/{match['region']}/", f"/{region}/"),
            environ.get("HTTP_AUTHORIZATION", ""),
        )
        call = {
            **environ,
            "HTTP_X_AMZ_TARGET": f"{_TARGET}{action}",
            "HTTP_AUTHORIZATION": authorization,
            "CONTENT_LENGTH": str(len(raw)),
            "wsgi.input": io.BytesIO(raw),
        }
        statuses: list[str] = []
        chunks = self.app(call, lambda status, headers, exc_info=None: statuses.append(status))
        answer = b"".join(chunks)
        return int(statuses[0].split()[0]), json.loads(answer or b"{}")


def _copy_of(table: dict[str, Any], key: str | None) -> dict[str, Any]:
    """A CreateTable of `table`'s schema, global secondary indexes (a replica has the table's),
    billing mode, stream and encryption (with `key`, the replica's own KMS key, or the region's
    AWS managed key)."""
    create: dict[str, Any] = {
        name: table[name]
        for name in ("TableName", "KeySchema", "AttributeDefinitions", "StreamSpecification")
    }
    mode = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    create["BillingMode"] = mode
    indexes = [
        {name: index[name] for name in ("IndexName", "KeySchema", "Projection")}
        for index in table.get("GlobalSecondaryIndexes", [])
    ]
    if mode == "PROVISIONED":
        throughput = table["ProvisionedThroughput"]
        create["ProvisionedThroughput"] = {
            unit: throughput[unit] for unit in ("ReadCapacityUnits", "WriteCapacityUnits")
        }
        for index in indexes:
            index["ProvisionedThroughput"] = create["ProvisionedThroughput"]
    if indexes:
        create["GlobalSecondaryIndexes"] = indexes
    if "SSEDescription" in table:
        create["SSESpecification"] = {"Enabled": True, "SSEType": "KMS"}
        if key:
            create["SSESpecification"]["KMSMasterKeyId"] = key
    return create


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    """The JSON body; the input is put back, so that moto can read it too."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    return json.loads(raw) if raw else {}


def _error(start_response: Callable[..., Any], message: str) -> list[bytes]:
    body = {"__type": "com.amazonaws.dynamodb.v20120810#ValidationException", "message": message}
    return _json(start_response, 400, body)


def _json(start_response: Callable[..., Any], status: int, body: dict[str, Any]) -> list[bytes]:
    payload = json.dumps(body).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("Content-Length", str(len(payload))),
    ]
    start_response(f"{status} {'OK' if status == 200 else 'Error'}", headers)
    return [payload]
