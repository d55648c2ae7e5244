"""`make load`: drive a deployed endpoint with wrk for a bounded time, to watch the HPA and the
Cluster Autoscaler react. It records on one route (or on many, with ROUTES) and prints rps,
p50/p99 and the count of non-2xx answers.

Usage: python -m bench.load URL [--api-key KEY] [--duration 60] [--connections 32] [--routes N]
"""

import argparse
import os
import sys
from pathlib import Path

from bench.run import wrk

BENCH_DIR = Path(__file__).resolve().parent
# wrk takes at most this long, whatever is asked: the load always stops by itself.
MAX_DURATION_SECONDS = 3600


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the service's base URL, e.g. https://kiusys.example.com")
    parser.add_argument("--api-key", default=os.environ.get("API_KEY", ""))
    parser.add_argument("--duration", type=int, default=60, help="seconds (default 60)")
    parser.add_argument("--connections", type=int, default=32, help="open connections")
    parser.add_argument("--routes", type=int, default=1, help="distinct routes to record on")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= MAX_DURATION_SECONDS:
        parser.error(f"--duration must be 1 to {MAX_DURATION_SECONDS} seconds")
    if args.connections < 1:
        parser.error("--connections must be at least 1")
    base = args.url.rstrip("/")
    env = {"API_KEY": args.api_key, "ROUTES": str(args.routes)}
    if args.routes > 1:
        target, script = base, "distinct_routes.lua"
    else:
        target, script = f"{base}/save-transaction/AR1133", "post.lua"
    print(
        f"recording on {args.routes} route(s) at {base} for {args.duration}s "
        f"with {args.connections} connections ...",
        file=sys.stderr,
    )
    run = wrk(target, args.duration, script, env, connections=args.connections)
    print(
        f"{run.requests} requests, {run.rps:,.0f} rps, p50 {run.p50_ms:.1f} ms, "
        f"p99 {run.p99_ms:.1f} ms, non-2xx {run.non_2xx}, socket errors {run.socket_errors}"
    )


if __name__ == "__main__":
    main()
