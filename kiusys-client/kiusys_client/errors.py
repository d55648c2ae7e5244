"""What a call raises: the server's refusal, or the end of its deadline."""

import httpx


class KiusysError(Exception):
    """Anything the client raises on purpose."""


class ApiError(KiusysError):
    """The server refused the call with an answer no retry can change (401, 403, 404, 422, a
    500, ...): nothing was counted. It carries the server's own message and request id, the id
    that names the call in the server's log."""

    def __init__(self, status_code: int, detail: object, request_id: str | None) -> None:
        self.status_code = status_code
        self.detail = detail
        self.request_id = request_id
        super().__init__(f"{status_code} {_readable(detail)} (request {request_id})")


class DeadlineExceeded(KiusysError):
    """The call's deadline ended while every attempt met a failure worth retrying (a transport
    error, 429, 502, 503, 504): `last` is the last of them.

    For a record, the outcome is unknown: it may have been counted. `idempotency_key` is the
    key every attempt carried; calling `record` again with it counts the record once, however
    many attempts were applied.
    """

    def __init__(
        self,
        attempts: int,
        last: "ApiError | httpx.TransportError",
        idempotency_key: str | None = None,
    ) -> None:
        self.attempts = attempts
        self.last = last
        self.idempotency_key = idempotency_key
        message = f"gave up after {attempts} attempt(s); the last: {_describe(last)}"
        if idempotency_key is not None:
            message += (
                "; the record may have been counted: record it again with "
                f"key={idempotency_key!r} to count it once"
            )
        super().__init__(message)


def _readable(detail: object) -> str:
    """FastAPI's `detail`: a sentence, or a list of validation errors with a `msg` each."""
    if isinstance(detail, list):
        return "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in detail)
    return str(detail)


def _describe(failure: "ApiError | httpx.TransportError") -> str:
    if isinstance(failure, ApiError):
        return str(failure)
    return f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
