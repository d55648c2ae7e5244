"""Open endpoints for the platform: liveness (no I/O), readiness (asks the store), metrics.

The paths are defined here once; the API-key gate, the Kubernetes probes and the tests use
these names.
"""

from fastapi import APIRouter, Response

from kiusys_app.api.deps import STORE_RESPONSES, StoreDep
from kiusys_app.metrics import CONTENT_TYPE, exposition
from kiusys_app.models import Health

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"
PATHS = (LIVENESS_PATH, READINESS_PATH, METRICS_PATH)

router = APIRouter(tags=["health"])


@router.get(LIVENESS_PATH, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    READINESS_PATH,
    summary="Readiness: every table answers with the service's own rights",
    responses=STORE_RESPONSES,
)
async def readyz(store: StoreDep) -> Health:
    await store.ping()
    return Health(status="ok")


@router.get(METRICS_PATH, summary="Prometheus metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE)
