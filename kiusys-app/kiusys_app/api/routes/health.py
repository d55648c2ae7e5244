"""Open endpoints for the platform: liveness (no I/O), readiness and the region's health (both
from one round of store calls, at most once a second). The metrics are not here: they have a
port of their own (`kiusys_app.serve`).

Readiness says whether this pod can serve: it fails until one round has proven the pod's
reads and writes, and whenever the store is misconfigured (rights, tables, endpoint,
credentials refused), which a rollout must stop on. A pod that starts while the store is down
or slow thus stays out of the Service until it has proven itself, and a rollout waits for it
(maxUnavailable 0 keeps the old pods serving) instead of moving on with nothing proven. Once
proven, a store that throttles or cannot be reached is shared by every pod: all of them would
fail at once, and the load balancer would then refuse every client, where a pod that stays
ready answers each call 503 with Retry-After and its metrics and alerts see it. A process that
is shutting down stops accepting connections, so its probes fail by themselves.

The region's health is the other question, asked by DNS (a Route 53 health check of each
region's endpoint) where the service runs in several regions: whether this region can count. A
store that cannot be reached, or a misconfigured one, fails it, so that DNS sends clients to the
other region; throttling does not (the other region would only get the same load on top).

The paths are defined here once; the API-key gate, the Kubernetes probes and the tests use
these names.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request

from kiusys_app.api.deps import STORE_RESPONSES
from kiusys_app.models import Health
from kiusys_app.stores import StoreError, StoreErrorKind

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
REGION_PATH = "/regionz"
PATHS = (LIVENESS_PATH, READINESS_PATH, REGION_PATH)
# Probes (the kubelet's, every load balancer node's, anyone's: the path is open) share one
# round of store calls per this many seconds.
READINESS_REUSE_SECONDS = 1.0
# The write rights are proven before the first ready answer, then again this often: each proof
# is two writes that DynamoDB refuses by their condition, and still bills.
WRITE_PROOF_SECONDS = 60.0
# Logged once per worker, by the first round that proves its reads and writes.
PROVEN_MESSAGE = "readiness: the store's reads and writes are proven, ready"

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


class Readiness:
    """The store's ping, shared: a probe within READINESS_REUSE_SECONDS of the last round's
    start gets that round's outcome, even while it is running."""

    def __init__(
        self, ping: Callable[[bool], Awaitable[None]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ping = ping
        self._clock = clock
        self._round: asyncio.Future[StoreError | None] | None = None
        self._started = 0.0
        self._writes_proven: float | None = None

    async def check(self, region: bool = False) -> None:
        """Raise the round's StoreError if the store is misconfigured for this pod; with
        `region`, also if it could not be reached (throttling never raises)."""
        now = self._clock()
        if self._round is None or now - self._started >= READINESS_REUSE_SECONDS:
            self._started = now
            self._round = asyncio.ensure_future(self._ask_store(now))
        # A probe that gives up does not cancel the round the others wait for.
        failure = await asyncio.shield(self._round)
        if region and failure is not None and failure.kind is not StoreErrorKind.THROTTLED:
            raise failure

    async def _ask_store(self, now: float) -> StoreError | None:
        """The ping, with the writes when their proof is due. A misconfigured store raises, and
        so does any failure before the first proof: nothing says yet that this pod can serve.
        Once proven, any other failure, the store's or the network's and not this pod's, is
        returned."""
        proven = self._writes_proven
        writes = proven is None or now - proven >= WRITE_PROOF_SECONDS
        try:
            await self._ping(writes)
        except StoreError as failure:
            if failure.kind is StoreErrorKind.MISCONFIGURED:
                raise
            state = "not ready before its first proof" if proven is None else "still ready"
            logger.warning("readiness: store %s, %s: %s", failure.kind.value, state, failure.reason)
            if proven is None:
                raise
            return failure
        except Exception as exc:
            # An error type this service does not know, on a 4xx (an unknown 5xx is unavailable):
            # DynamoDB says the request needs a fix, so it is this pod's, as a bug here would be.
            # The answer's handler logs it, as for any misconfigured store.
            raise StoreError(StoreErrorKind.MISCONFIGURED, f"{type(exc).__name__}: {exc}") from None
        if proven is None:
            logger.info(PROVEN_MESSAGE)
        if writes:
            self._writes_proven = now
        return None


@router.get(LIVENESS_PATH, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    READINESS_PATH,
    summary="Readiness: the store is not misconfigured for this pod",
    description=(
        f"The store is asked at most once every {READINESS_REUSE_SECONDS:g} s, and its write "
        f"rights are proven every {WRITE_PROOF_SECONDS:g} s. Throttling or an unreachable "
        "store keep the pod ready: the calls answer those with 503 and Retry-After."
    ),
    responses=STORE_RESPONSES,
)
async def readyz(request: Request) -> Health:
    readiness: Readiness = request.app.state.readiness
    await readiness.check()
    return Health(status="ok")


@router.get(
    REGION_PATH,
    summary="Region health: this region's store answers",
    description=(
        "For DNS failover between regions: 503 while the store cannot be reached or is "
        "misconfigured, 200 otherwise (throttling included). It shares readiness's round of "
        f"store calls, at most one every {READINESS_REUSE_SECONDS:g} s."
    ),
    responses=STORE_RESPONSES,
)
async def regionz(request: Request) -> Health:
    readiness: Readiness = request.app.state.readiness
    await readiness.check(region=True)
    return Health(status="ok")
