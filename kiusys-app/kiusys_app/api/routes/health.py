"""Open endpoints for the platform: liveness (no I/O), readiness (asks the store), metrics."""

from fastapi import APIRouter, Response

from kiusys_app.api.deps import STORE_RESPONSES, StoreDep
from kiusys_app.metrics import CONTENT_TYPE, exposition
from kiusys_app.models import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", summary="Readiness: the store answers", responses=STORE_RESPONSES)
async def readyz(store: StoreDep) -> Health:
    await store.aping()
    return Health(status="ok")


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE)
