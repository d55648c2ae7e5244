"""AWS credentials for the DynamoDB store's signer, from botocore's own credential chain.

botocore finds what the pod or the laptop has: the environment, a web-identity token file
(IRSA), SSO, a `credential_process`, the shared files, the container or instance metadata.
Finding them is blocking I/O (files, STS, metadata, a child process), so each lookup runs on a
thread, one at a time, in the background: calls sign with the key of the last lookup while it
is valid. A lookup starts when that key enters botocore's advisory window (15 minutes before
it expires); one that fails is tried again after a growing pause, and logged. Only a call that
has no valid key waits for a lookup, or fails at once while the pause runs.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import botocore.session
from aiodynamo.credentials import Key
from botocore.exceptions import ClientError

from kiusys_app.stores.base import StoreErrorKind

logger = logging.getLogger(__name__)

# The pause after a successful lookup before another, and after failed ones: doubling from
# RETRY_FIRST_SECONDS up to RETRY_CAP_SECONDS.
LOOKUP_SPACING_SECONDS = 1.0
RETRY_FIRST_SECONDS = 1.0
RETRY_CAP_SECONDS = 30.0


class CredentialsError(Exception):
    """The chain failed to find or refresh credentials."""

    def __init__(self, kind: StoreErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class ChainCredentials:
    def __init__(self, session: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session or botocore.session.get_session()
        self._clock = clock
        # What the last successful lookup found: botocore's credentials, which know their
        # expiry, and the key frozen from them. Both are set together, on the event loop.
        self._source: Any = None
        self._key: Key | None = None
        self._lookup: asyncio.Task[None] | None = None
        self._failure: CredentialsError | None = None
        self._failures = 0
        self._next_lookup = float("-inf")

    async def key(self) -> Key | None:
        """The key to sign with now; None when the chain finds no credentials."""
        if self._valid():
            if self._near_expiry():
                self._look_up_soon()
            return self._key
        self._look_up_soon()
        if self._lookup is not None:  # shielded: a caller that gives up leaves it running
            await asyncio.shield(self._lookup)
        if self._valid():
            return self._key
        if self._failure is not None:
            raise self._failure
        if self._key is not None:
            raise CredentialsError(StoreErrorKind.UNAVAILABLE, "credentials: the key expired")
        return None

    def _valid(self) -> bool:
        """A key that has not expired; static keys never do."""
        return self._key is not None and not self._expires_within(0)

    def _near_expiry(self) -> bool:
        return self._expires_within(None)  # botocore's advisory window

    def _expires_within(self, seconds: float | None) -> bool:
        refresh_needed = getattr(self._source, "refresh_needed", None)
        return refresh_needed is not None and bool(refresh_needed(seconds))

    def _look_up_soon(self) -> None:
        """Start a lookup, unless one runs or the pause after the last one does."""
        if self._lookup is None and self._clock() >= self._next_lookup:
            self._lookup = asyncio.create_task(self._look_up())

    async def _look_up(self) -> None:
        try:
            source, key = await asyncio.to_thread(self._find)
        except CredentialsError as failure:
            self._failed(failure)
        else:
            if key is None:
                self._failed(None)
            else:  # published at once: no other coroutine runs between these lines
                self._source, self._key = source, key
                self._failure, self._failures = None, 0
                self._next_lookup = self._clock() + LOOKUP_SPACING_SECONDS
        finally:
            self._lookup = None

    def _failed(self, failure: CredentialsError | None) -> None:
        self._failure = failure
        self._failures += 1
        pause = min(RETRY_CAP_SECONDS, RETRY_FIRST_SECONDS * 2 ** (self._failures - 1))
        self._next_lookup = self._clock() + pause
        reason = failure.reason if failure else "credentials: no source in the chain has any"
        logger.warning(
            "%s; %s; the next lookup in %.0f s",
            reason,
            "signing with the key that is still valid" if self._valid() else "no valid key",
            pause,
            extra={"error": reason},
        )

    def _find(self) -> tuple[Any, Key | None]:
        """On a thread: ask the whole chain afresh (botocore's session would keep a key whose
        refresh fails, and say nothing), and freeze the key it finds."""
        try:
            source = self._session.get_component("credential_provider").load_credentials()
            if source is None:
                return None, None
            frozen = source.get_frozen_credentials()
        except ClientError as exc:  # STS refused: the role's trust or the token is wrong
            raise CredentialsError(StoreErrorKind.MISCONFIGURED, f"credentials: {exc}") from None
        except Exception as exc:  # STS or the metadata service did not answer, or botocore
            # failed otherwise (a key refreshed and still expired is its RuntimeError)
            raise CredentialsError(StoreErrorKind.UNAVAILABLE, f"credentials: {exc}") from None
        return source, Key(id=frozen.access_key, secret=frozen.secret_key, token=frozen.token)
