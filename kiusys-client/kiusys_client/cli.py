"""`kiusys`: the client on the command line, for operators and the runbook's verify step.

    kiusys record AR1133            {"route": "AR1133", "transactions": 7, "key": "...", ...}
    kiusys check AR1133 LA0001      {"AR1133": 7, "LA0001": 0}

Exit status: 0 done, 1 refused by the server, 2 bad usage, 3 the deadline ended (for a record:
it may have been counted; run it again with `--key` and the key printed to count it once).
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict

import httpx

from kiusys_client._retry import RetryPolicy
from kiusys_client.client import DEFAULT_URL, Client
from kiusys_client.errors import ApiError, DeadlineExceeded, KiusysError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kiusys",
        description="Record and check flight-route transactions on a Kiusys counter.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    top.add_argument(
        "--url",
        default=os.environ.get("KIUSYS_URL", DEFAULT_URL),
        help="the service's base URL (env KIUSYS_URL)",
    )
    # Read in main, not as a default: a default is shown by --help, and a key must not be.
    top.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help="the client's key, sent as a bearer token (default: env KIUSYS_API_KEY, else none)",
    )
    top.add_argument(
        "--deadline",
        type=float,
        default=RetryPolicy.deadline,
        help="seconds the call may take, retries included",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    record = commands.add_parser("record", help="count one transaction on a route")
    record.add_argument("route", help="a flight route, such as AR1133")
    record.add_argument(
        "--key",
        help="the Idempotency-Key: give the key of a record that ended in doubt to count it "
        "once (a new one otherwise)",
    )
    check = commands.add_parser("check", help="print the counts of one or more routes")
    check.add_argument("routes", nargs="+", metavar="route", help="flight routes")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    if options.deadline <= 0:
        parser().error("--deadline must be positive")
    try:
        api_key = getattr(options, "api_key", None) or os.environ.get("KIUSYS_API_KEY") or None
        policy = RetryPolicy(deadline=options.deadline)
        with Client(options.url, api_key, policy=policy) as kiusys:
            if options.command == "record":
                print(json.dumps(asdict(kiusys.record(options.route, options.key))))
            else:
                print(json.dumps(kiusys.check_many(options.routes)))
    except ApiError as error:
        _fail({"status": error.status_code, "detail": error.detail, "request_id": error.request_id})
        return 1
    except DeadlineExceeded as error:
        _fail({"error": str(error), "key": error.idempotency_key})
        return 3
    except (KiusysError, httpx.HTTPError, httpx.InvalidURL) as error:
        _fail({"error": f"{type(error).__name__}: {error}"})
        return 1
    return 0


def _fail(what: dict[str, object]) -> None:
    print(json.dumps(what), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
