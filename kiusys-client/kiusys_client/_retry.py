"""When a call tries again, and for how long: one policy that the sync and the async client
share, with the clock, the sleep and the jitter passed in so that tests can drive them.

The retry rule follows the service's answers (docs/api.md, "Errors"):
- a transport error, 429, 502, 503 or 504 is tried again: nothing was counted, or the record
  carries its idempotency key and a repeat counts nothing;
- any other answer is final: a 2xx, a 4xx that no repeat can change, and a 500, which is the
  service's bug and not a passing state.

Pauses are "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): a random
share of a ceiling that doubles from `first_pause` to `max_pause`, and never shorter than the
server's `Retry-After`. Every attempt and every pause fits in the call's deadline.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from kiusys_client.errors import ApiError, DeadlineExceeded

log = logging.getLogger("kiusys_client")

RETRIED_STATUSES = frozenset({429, 502, 503, 504})
# Failures to reach the server or to read its answer. Not among them: a URL the client cannot
# send to (`UnsupportedProtocol`) and a request it cannot write (`LocalProtocolError`), which
# fail the same way every time.
RETRIED_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)
# An attempt shorter than this could not get an answer: the deadline is as good as spent.
SHORTEST_ATTEMPT = 0.05

Failure = ApiError | httpx.TransportError


@dataclass(frozen=True)
class RetryPolicy:
    """How long a call may take in all (`deadline`), and how it spaces its attempts."""

    deadline: float = 10.0
    # Longer than the service's own store budget (5 s), so that a slow store is answered by the
    # service's 503 rather than cut off by the client.
    attempt_timeout: float = 6.0
    first_pause: float = 0.05
    max_pause: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.first_pause <= self.max_pause:
            raise ValueError("a policy needs 0 < first_pause <= max_pause")
        if self.deadline <= 0 or self.attempt_timeout <= 0:
            raise ValueError("a policy needs a positive deadline and attempt_timeout")


class Attempts:
    """One call's attempts: how long the next may wait, and the pause after a failure."""

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Callable[[], float],
        jitter: Callable[[], float],
        idempotency_key: str | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._jitter = jitter
        self._key = idempotency_key
        self._ends = clock() + policy.deadline
        self.made = 0

    def start(self) -> float:
        """Starts an attempt, and returns its timeout: the policy's, cut at the deadline."""
        self.made += 1
        return max(SHORTEST_ATTEMPT, min(self._policy.attempt_timeout, self._ends - self._clock()))

    def pause_after(self, failure: Failure, retry_after: float | None = None) -> float:
        """The pause before the next attempt; raises `DeadlineExceeded` when the deadline has no
        room for a pause and an attempt after it."""
        ceiling = min(self._policy.max_pause, self._policy.first_pause * 2.0 ** (self.made - 1))
        pause = max(self._jitter() * ceiling, retry_after or 0.0)
        if self._clock() + pause + SHORTEST_ATTEMPT > self._ends:
            raise DeadlineExceeded(self.made, failure, self._key)
        log.info(
            "attempt %d failed (%s); trying again in %.3f s",
            self.made,
            failure.status_code if isinstance(failure, ApiError) else type(failure).__name__,
            pause,
        )
        return pause


def retry_after(
    response: httpx.Response, now: Callable[[], datetime] | None = None
) -> float | None:
    """The server's `Retry-After` in seconds (RFC 9110, section 10.2.3: a number of seconds or
    an HTTP date), or None when it is absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, with no claim about local time (RFC 5322)
        when = when.replace(tzinfo=UTC)
    current = now() if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
