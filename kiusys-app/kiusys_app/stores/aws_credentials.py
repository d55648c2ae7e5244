"""AWS credentials for the DynamoDB store's signer, from botocore's own credential chain.

botocore finds what the pod or the laptop has: the environment, a web-identity token file
(IRSA), SSO, a `credential_process`, the shared files, the container or instance metadata.
Finding and refreshing them is blocking I/O (files, STS, metadata, a child process), so it runs
on a thread. The event loop only reads the key frozen by the last refresh, and asks botocore
whether its expiry is near, which is a comparison of times.
"""

import asyncio
from typing import Any

import botocore.session
from aiodynamo.credentials import Key
from botocore.exceptions import BotoCoreError, ClientError

from kiusys_app.stores.base import StoreErrorKind


class CredentialsError(Exception):
    """The chain failed to find or refresh credentials."""

    def __init__(self, kind: StoreErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class ChainCredentials:
    def __init__(self, session: Any = None) -> None:
        self._session = session or botocore.session.get_session()
        self._credentials: Any = None
        self._key: Key | None = None
        self._resolved = False
        self._lock = asyncio.Lock()

    async def key(self) -> Key | None:
        """The key to sign with now; None when the chain finds no credentials."""
        if self._refresh_needed():
            async with self._lock:  # one lookup at a time; those who waited may find it done
                if self._refresh_needed():
                    await asyncio.to_thread(self._refresh)
        return self._key

    def _refresh_needed(self) -> bool:
        if not self._resolved:
            return True
        # Refreshable credentials know their expiry; static ones never expire.
        refresh_needed = getattr(self._credentials, "refresh_needed", None)
        return refresh_needed is not None and bool(refresh_needed())

    def _refresh(self) -> None:
        """On a thread: find the credentials once, then refresh them when they near expiry."""
        try:
            if not self._resolved:
                self._credentials = self._session.get_credentials()
                self._resolved = True
            if self._credentials is not None:
                frozen = self._credentials.get_frozen_credentials()
                self._key = Key(id=frozen.access_key, secret=frozen.secret_key, token=frozen.token)
        except ClientError as exc:  # STS refused: the role's trust or the token is wrong
            raise CredentialsError(StoreErrorKind.MISCONFIGURED, f"credentials: {exc}") from None
        except BotoCoreError as exc:  # STS or the metadata service did not answer
            raise CredentialsError(StoreErrorKind.UNAVAILABLE, f"credentials: {exc}") from None
