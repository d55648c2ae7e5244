"""With PROMETHEUS_MULTIPROC_DIR set, /metrics adds up every uvicorn worker."""

import re
from pathlib import Path

import httpx
import pytest

from tests.support.processes import app_server

pytestmark = pytest.mark.slow


def recorded(text: str) -> float:
    (value,) = re.findall(r"^kiusys_transactions_recorded_total ([\d.e+]+)$", text, re.MULTILINE)
    return float(value)


def test_metrics_add_up_across_workers(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        "KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3"),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    with app_server(env, workers=3) as url:
        for _ in range(30):
            # A new connection each time, so that the requests spread over the workers.
            httpx.post(f"{url}/save-transaction/AR1133").raise_for_status()
        scrapes = [recorded(httpx.get(f"{url}/metrics").text) for _ in range(6)]
    assert scrapes == [30.0] * 6
    assert len(list(metrics_dir.glob("counter_*.db"))) > 1, "more than one worker answered"
