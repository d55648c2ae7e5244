"""The service with one per-request feature taken out, to measure what that feature costs.

BENCH_WITHOUT names what to take out (comma-separated):
- `access-log`: the JSON line per request (the logger is set above INFO);
- `metrics`: the request counter and latency histogram (replaced by no-ops);
- `api-key`: the key check (no keys are set, so the gate passes every request on);
- `limits`: the request-limits and HEAD middleware (removed from the stack).
Everything else is the production app, built by `create_app` from the environment.
"""

import logging
import os
from typing import Any

from kiusys_app.api import observability
from kiusys_app.api.limits import RequestLimits
from kiusys_app.config import load_settings
from kiusys_app.main import create_app

WITHOUT = {part for part in os.environ.get("BENCH_WITHOUT", "").split(",") if part}


class _NoMetric:
    def labels(self, *_: Any) -> "_NoMetric":
        return self

    def inc(self, *_: Any) -> None:
        pass

    def observe(self, *_: Any) -> None:
        pass


settings = load_settings()
if "api-key" in WITHOUT:
    settings = settings.model_copy(update={"api_keys": None, "api_keys_file": None})
if "metrics" in WITHOUT:
    observability.REQUESTS = observability.REQUEST_DURATION = _NoMetric()  # type: ignore[assignment]
app = create_app(settings)
if "access-log" in WITHOUT:
    logging.getLogger("kiusys_app.access").setLevel(logging.WARNING)
if "limits" in WITHOUT:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not RequestLimits]
