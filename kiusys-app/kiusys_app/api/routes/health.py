"""Open endpoints for the platform: liveness (no I/O) and readiness (asks the store, at most
once a second). The metrics are not here: they have a port of their own (`kiusys_app.serve`).

Readiness says whether this pod can serve: it fails when the store is misconfigured (rights,
tables, endpoint, credentials refused), which a rollout must stop on. A store that throttles or
cannot be reached is shared by every pod: all of them would fail at once, and the load balancer
would then refuse every client, where a pod that stays ready answers each call 503 with
Retry-After and its metrics and alerts see it. A process that is shutting down stops accepting
connections, so its probes fail by themselves.

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
PATHS = (LIVENESS_PATH, READINESS_PATH)
# Probes (the kubelet's, every load balancer node's, anyone's: the path is open) share one
# round of store calls per this many seconds.
READINESS_REUSE_SECONDS = 1.0
# The write rights are proven before the first ready answer, then again this often: each proof
# is two writes that DynamoDB refuses by their condition, and still bills.
WRITE_PROOF_SECONDS = 60.0

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


class Readiness:
    """The store's ping, shared: a probe within READINESS_REUSE_SECONDS of the last round's
    start gets that round's outcome (success or a misconfigured store's StoreError), even while
    it is running."""

    def __init__(
        self, ping: Callable[[bool], Awaitable[None]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ping = ping
        self._clock = clock
        self._round: asyncio.Future[None] | None = None
        self._started = 0.0
        self._writes_proven: float | None = None

    async def check(self) -> None:
        now = self._clock()
        if self._round is None or now - self._started >= READINESS_REUSE_SECONDS:
            self._started = now
            self._round = asyncio.ensure_future(self._ask_store(now))
        # A probe that gives up does not cancel the round the others wait for.
        await asyncio.shield(self._round)

    async def _ask_store(self, now: float) -> None:
        """The ping, with the writes when their proof is due; only a misconfigured store fails
        it (503). Any other failure is the store's or the network's, not this pod's."""
        proven = self._writes_proven
        writes = proven is None or now - proven >= WRITE_PROOF_SECONDS
        try:
            await self._ping(writes)
        except StoreError as exc:
            if exc.kind is StoreErrorKind.MISCONFIGURED:
                raise
            logger.warning("readiness: store %s, still ready: %s", exc.kind.value, exc.reason)
            return
        except Exception as exc:
            logger.warning("readiness: %s: %s, still ready", type(exc).__name__, exc)
            return
        if writes:
            self._writes_proven = now


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
