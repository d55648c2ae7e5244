"""Serve moto's AWS emulator on one thread, so that its DynamoDB is an exact oracle.

moto's own `moto_server` serves requests on threads, and its UpdateItem is an unlocked
read-modify-write, so concurrent increments get lost inside moto itself. One thread removes that.
In front of moto sit `EksExtras`, the EKS add-on and access-entry calls that moto lacks, and
`GlobalTables`, DynamoDB's replicas.

Usage: python -m tests.support.moto_server --port PORT [--host HOST] [--cert-dir DIR]
"""

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from moto import settings as moto_settings
from moto.iam.access_control import IAMPolicy
from moto.s3.models import FakeBucket, FakeDeleteMarker
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_ssl_devcert, run_simple

from tests.support.eks_extras import EksExtras
from tests.support.global_tables import GlobalTables


def honour_secure_transport(secure: bool) -> None:
    """Evaluate bucket-policy statements conditioned on `aws:SecureTransport` as AWS does.

    moto ignores a policy's conditions, so a "deny unless TLS" statement would deny everything.
    Every request to this server has the same transport, so such a statement either always
    applies or never does; other conditions are left to moto as they are.
    """

    def applies(statement: dict[str, Any]) -> bool:
        wanted = statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
        if wanted is None:
            return True
        values = wanted if isinstance(wanted, list) else [wanted]
        return str(secure).lower() in [str(v).lower() for v in values]

    def get_permission(bucket: FakeBucket, action: str, resource: str) -> Any:
        if bucket.policy is None:
            return original(bucket, action, resource)
        policy = json.loads(bucket.policy)
        statements = policy["Statement"]
        statements = statements if isinstance(statements, list) else [statements]
        policy["Statement"] = [s for s in statements if applies(s)]
        return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)

    original = FakeBucket.get_permission
    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def let_delete_markers_be_deleted() -> None:
    """Deleting a key whose last version is a delete marker crashes moto (it calls `dispose`,
    which only real versions have); Terraform's S3 lock files leave exactly such keys behind."""
    if not hasattr(FakeDeleteMarker, "dispose"):
        FakeDeleteMarker.dispose = lambda self, garbage=False: None  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--cert-dir",
        type=Path,
        help="serve HTTPS for host `localhost` with a self-signed certificate written here as moto.crt",
    )
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = GlobalTables(EksExtras(DomainDispatcherApplication(create_backend_app)))
    # Terraform attaches AWS-managed policies (the EKS worker policies) by ARN.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    # ACM issues a DNS-validated certificate at once instead of after a minute.
    moto_settings.ACM_VALIDATION_WAIT = 0
    honour_secure_transport(args.cert_dir is not None)
    let_delete_markers_be_deleted()
    ssl_context = None
    if args.cert_dir is not None:
        args.cert_dir.mkdir(parents=True, exist_ok=True)
        ssl_context = make_ssl_devcert(str(args.cert_dir / "moto"), cn="localhost")
    run_simple(args.host, args.port, app, threaded=False, processes=1, ssl_context=ssl_context)


if __name__ == "__main__":
    main()
