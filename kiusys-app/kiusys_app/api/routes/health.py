"""Open endpoints for the platform: liveness (no I/O) and readiness (asks the store, at most
once a second). The metrics are not here: they have a port of their own (`kiusys_app.serve`).

The paths are defined here once; the API-key gate, the Kubernetes probes and the tests use
these names.
"""

import asyncio
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

router = APIRouter(tags=["health"])


class Readiness:
    """The store's ping, shared: a probe within READINESS_REUSE_SECONDS of the last round's
    start gets that round's outcome (success or its StoreError), even while it is running."""

    def __init__(
        self, ping: Callable[[], Awaitable[None]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ping = ping
        self._clock = clock
        self._round: asyncio.Future[None] | None = None
        self._started = 0.0

    async def check(self) -> None:
        now = self._clock()
        if self._round is None or now - self._started >= READINESS_REUSE_SECONDS:
            self._started = now
            self._round = asyncio.ensure_future(self._ask_store())
        # A probe that gives up does not cancel the round the others wait for.
        await asyncio.shield(self._round)

    async def _ask_store(self) -> None:
        """The ping; whatever else it raises, a store that fails it is not ready (503)."""
        try:
            await self._ping()
        except StoreError:
            raise
        except Exception as exc:
            reason = f"readiness: {type(exc).__name__}: {exc}"
            raise StoreError(StoreErrorKind.UNAVAILABLE, reason) from exc


@router.get(LIVENESS_PATH, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    READINESS_PATH,
    summary="Readiness: every table answers with the service's own rights",
    description=f"The store is asked at most once every {READINESS_REUSE_SECONDS:g} s.",
    responses=STORE_RESPONSES,
)
async def readyz(request: Request) -> Health:
    readiness: Readiness = request.app.state.readiness
    await readiness.check()
    return Health(status="ok")
