"""Serve moto's AWS emulator on one thread, so that its DynamoDB is an exact oracle.

moto's own `moto_server` serves requests on threads, and its UpdateItem is an unlocked
read-modify-write, so concurrent increments get lost inside moto itself. One thread removes that.

Usage: python -m tests.support.moto_server --port PORT [--host HOST]
"""

import argparse
import logging

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app, threaded=False, processes=1)


if __name__ == "__main__":
    main()
