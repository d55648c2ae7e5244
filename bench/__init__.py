"""`make bench`: throughput and latency of the service beside a bare FastAPI endpoint."""
