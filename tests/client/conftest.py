"""What the client's suites share: the client's retry lines, counted."""

import logging
from collections.abc import Iterator

import pytest


class Retries(logging.Handler):
    """Counts the client's retry lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.seen += 1


@pytest.fixture
def retries() -> Iterator[Retries]:
    """Counts the retries every client of the test logs."""
    logger = logging.getLogger("kiusys_client")
    handler, level = Retries(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
