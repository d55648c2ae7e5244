"""API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>` on the record and check calls."""

import hmac
from typing import Annotated

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

_api_key_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="An API key in the X-API-Key header.",
    auto_error=False,
)
_bearer = HTTPBearer(
    scheme_name="Bearer",
    description="An API key as a bearer token: `Authorization: Bearer <key>`.",
    auto_error=False,
)

UNAUTHORIZED_RESPONSE: dict[int | str, dict[str, object]] = {
    401: {
        "description": "A valid API key is required: `Authorization: Bearer <key>` or `X-API-Key`.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }
}


def key_is_valid(presented: str, keys: frozenset[str]) -> bool:
    """Compare against every key in constant time, so timing reveals neither key nor position."""
    candidate = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode())
    return matched


async def require_api_key(
    request: Request,
    api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    keys: frozenset[str] = request.app.state.api_keys
    if not keys:
        return
    presented = bearer.credentials if bearer is not None else api_key
    if presented is None or not key_is_valid(presented, keys):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="a valid API key is required",
            headers={"WWW-Authenticate": 'Bearer realm="kiusys"'},
        )
