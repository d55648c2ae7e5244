"""The official Python client of the Kiusys transaction counter.

from kiusys_client import Client

with Client("https://counter.example", api_key="kiu_...") as kiusys:
    kiusys.record("AR1133").transactions   # counted once, however often it was retried
    kiusys.check("AR1133")
    kiusys.usage("2026-11-01", "2026-11-30", airline="AR").routes   # per route and UTC day
"""

from kiusys_client._protocol import MAX_BATCH_ROUTES, Recorded, Usage
from kiusys_client._retry import RetryPolicy
from kiusys_client.client import AsyncClient, Client
from kiusys_client.errors import ApiError, DeadlineExceeded, KiusysError

__all__ = [
    "MAX_BATCH_ROUTES",
    "ApiError",
    "AsyncClient",
    "Client",
    "DeadlineExceeded",
    "KiusysError",
    "Recorded",
    "RetryPolicy",
    "Usage",
]
