"""Probes for the orchestrator: liveness does no I/O, readiness asks the store."""

from fastapi import APIRouter

from kiusys_app.api.deps import STORE_RESPONSES, StoreDep
from kiusys_app.models import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", summary="Readiness: the store answers", responses=STORE_RESPONSES)
def readyz(store: StoreDep) -> Health:
    store.ping()
    return Health(status="ok")
