"""What moto's EKS lacks and the eks-cluster root uses, served in front of moto.

moto 5 has no managed add-ons and no access entries, and its DescribeCluster leaves out
`accessConfig` and `upgradePolicy`. This WSGI middleware answers those calls itself, from
memory, in the shapes of the EKS API (botocore's eks service model), and passes everything else
to moto. Add-ons become ACTIVE at once; the add-on catalogue is a fixed, invented one.

Only requests signed for the `eks` service are looked at.
"""

import io
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Invented versions, one per add-on the root installs; what matters is that Terraform's
# aws_eks_addon_version data source finds one for the cluster's Kubernetes version.
CATALOGUE = {
    "vpc-cni": "v1.21.1-eksbuild.1",
    "coredns": "v1.13.1-eksbuild.1",
    "kube-proxy": "v1.35.0-eksbuild.1",
    "metrics-server": "v0.8.0-eksbuild.1",
}

_ADDONS = re.compile(
    r"^/clusters/(?P<cluster>[^/]+)/addons(?:/(?P<addon>[^/]+)(?P<update>/update)?)?$"
)
_ENTRIES = re.compile(
    r"^/clusters/(?P<cluster>[^/]+)/access-entries(?:/(?P<principal>[^/]+)"
    r"(?P<policies>/access-policies(?:/(?P<policy>[^/]+))?)?)?$"
)
_CLUSTER = re.compile(r"^/clusters(?:/(?P<cluster>[^/]+))?$")


class NotFound(Exception):
    pass


def _now() -> float:
    return datetime.now(UTC).timestamp()


class EksExtras:
    def __init__(self, app: WSGIApp, account: str = "123456789012", region: str = "us-east-1"):
        self.app = app
        self.account = account
        self.region = region
        self.addons: dict[tuple[str, str], dict[str, Any]] = {}
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.policies: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.cluster_extras: dict[str, dict[str, Any]] = {}

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if "/eks/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
            return self.app(environ, start_response)
        method = environ["REQUEST_METHOD"]
        # The raw path: ARNs in it are percent-encoded, slashes included.
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
        path = raw.split("?", 1)[0]
        try:
            if path == "/addons/supported-versions":
                return _json(start_response, 200, self._versions(environ))
            if match := _ADDONS.match(path):
                return _json(start_response, 200, self._addon(method, match, _body(environ)))
            if match := _ENTRIES.match(path):
                return _json(start_response, 200, self._entry(method, match, _body(environ)))
        except NotFound as exc:
            return _json(
                start_response, 404, {"message": str(exc)}, error="ResourceNotFoundException"
            )
        if match := _CLUSTER.match(path):
            return self._cluster(environ, start_response, method, match)
        return self.app(environ, start_response)

    # Add-ons.

    def _versions(self, environ: dict[str, Any]) -> dict[str, Any]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        names = query.get("addonName", list(CATALOGUE))
        cluster_version = query.get("kubernetesVersion", ["1.35"])[0]
        return {
            "addons": [
                {
                    "addonName": name,
                    "type": "networking",
                    "owner": "aws",
                    "addonVersions": [
                        {
                            "addonVersion": CATALOGUE[name],
                            "architecture": ["amd64", "arm64"],
                            "compatibilities": [
                                {"clusterVersion": cluster_version, "defaultVersion": True}
                            ],
                        }
                    ],
                }
                for name in names
                if name in CATALOGUE
            ]
        }

    def _addon(self, method: str, match: re.Match[str], body: dict[str, Any]) -> dict[str, Any]:
        cluster, name = unquote(match["cluster"]), match["addon"] and unquote(match["addon"])
        if name is None and method == "GET":
            return {"addons": [a for (c, a) in self.addons if c == cluster]}
        if name is None and method == "POST":
            addon = {
                "addonName": body["addonName"],
                "clusterName": cluster,
                "status": "ACTIVE",
                "addonVersion": body.get("addonVersion") or CATALOGUE[body["addonName"]],
                "health": {"issues": []},
                "addonArn": self._arn(f"addon/{cluster}/{body['addonName']}/x"),
                "createdAt": _now(),
                "modifiedAt": _now(),
                "tags": body.get("tags", {}),
            }
            for field in ("configurationValues", "serviceAccountRoleArn"):
                if field in body:
                    addon[field] = body[field]
            self.addons[(cluster, body["addonName"])] = addon
            return {"addon": addon}
        addon = self.addons.get((cluster, name))
        if addon is None:
            raise NotFound(f"No addon: {name} found in cluster: {cluster}")
        if method == "DELETE":
            del self.addons[(cluster, name)]
            return {"addon": {**addon, "status": "DELETING"}}
        if match["update"]:
            for field in ("addonVersion", "configurationValues", "serviceAccountRoleArn"):
                if field in body:
                    addon[field] = body[field]
            addon["modifiedAt"] = _now()
            return {"update": self._update("AddonUpdate")}
        return {"addon": addon}

    # Access entries and their policies.

    def _entry(self, method: str, match: re.Match[str], body: dict[str, Any]) -> dict[str, Any]:
        cluster = unquote(match["cluster"])
        principal = unquote(match["principal"]) if match["principal"] else None
        if principal is None and method == "GET":
            return {"accessEntries": [p for (c, p) in self.entries if c == cluster]}
        if principal is None and method == "POST":
            principal = body["principalArn"]
            entry = {
                "clusterName": cluster,
                "principalArn": principal,
                "kubernetesGroups": body.get("kubernetesGroups", []),
                "accessEntryArn": self._arn(f"access-entry/{cluster}/x"),
                "createdAt": _now(),
                "modifiedAt": _now(),
                "tags": body.get("tags", {}),
                "username": body.get("username", principal),
                "type": body.get("type", "STANDARD"),
            }
            self.entries[(cluster, principal)] = entry
            self.policies[(cluster, principal)] = {}
            return {"accessEntry": entry}
        key = (cluster, principal)
        if key not in self.entries:
            raise NotFound(f"The specified principalArn could not be found: {principal}")
        if match["policies"]:
            return self._policy(method, key, match["policy"], body)
        if method == "DELETE":
            del self.entries[key]
            del self.policies[key]
            return {}
        return {"accessEntry": self.entries[key]}

    def _policy(
        self, method: str, key: tuple[str, str], policy: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        associated = self.policies[key]
        if method == "POST":
            entry = {
                "policyArn": body["policyArn"],
                "accessScope": body["accessScope"],
                "associatedAt": _now(),
                "modifiedAt": _now(),
            }
            associated[body["policyArn"]] = entry
            return {"clusterName": key[0], "principalArn": key[1], "associatedAccessPolicy": entry}
        if method == "DELETE" and policy is not None:
            if associated.pop(unquote(policy), None) is None:
                raise NotFound(f"The policy is not associated: {unquote(policy)}")
            return {}
        return {
            "clusterName": key[0],
            "principalArn": key[1],
            "associatedAccessPolicies": list(associated.values()),
        }

    # The cluster: moto answers; the access and upgrade settings it drops are added back.

    def _cluster(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        method: str,
        match: re.Match[str],
    ) -> Iterable[bytes]:
        body = _body(environ) if method == "POST" else {}
        if method == "POST" and match["cluster"] is None:
            self.cluster_extras[body["name"]] = {
                "accessConfig": body.get("accessConfig", {"authenticationMode": "CONFIG_MAP"}),
                "upgradePolicy": body.get("upgradePolicy", {"supportType": "EXTENDED"}),
            }
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            captured.update(status=status, headers=headers)
            return lambda data: None

        payload = b"".join(self.app(environ, capture))
        name = unquote(match["cluster"]) if match["cluster"] else body.get("name")
        try:
            answer = json.loads(payload)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and "cluster" in answer and name in self.cluster_extras:
            if method == "DELETE":
                self.cluster_extras.pop(name)
            else:
                answer["cluster"].update(self.cluster_extras[name])
            payload = json.dumps(answer).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(payload)))])
        return [payload]

    def _arn(self, resource: str) -> str:
        return f"arn:aws:eks:{self.region}:{self.account}:{resource}"

    def _update(self, kind: str) -> dict[str, Any]:
        return {"id": "00000000-0000-0000-0000-000000000000", "status": "Successful", "type": kind}


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    """The JSON body; the input is put back, so that moto can read it too."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    return json.loads(raw) if raw else {}


def _json(
    start_response: Callable[..., Any], status: int, body: dict[str, Any], error: str | None = None
) -> list[bytes]:
    payload = json.dumps(body).encode()
    reason = {200: "OK", 404: "Not Found"}[status]
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    if error:
        headers.append(("x-amzn-ErrorType", error))
    start_response(f"{status} {reason}", headers)
    return [payload]
