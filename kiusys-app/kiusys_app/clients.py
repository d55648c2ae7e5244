"""Named clients: which API keys may call, for which airlines, to do what.

Each client of the service (an airline's reservation system, an analytics job) has a name, the
SHA-256 digests of its keys (more than one while a key is rotated), the airlines whose routes it
may touch, and what it may do with them: record, check, read usage (`usage`), or several. The
clients file (`KIUSYS_CLIENTS_FILE`, TOML) lists them:

    [clients.aerolineas]
    key_sha256 = ["<64 hex digits>"]
    airlines = ["AR"]            # airline codes, or ["*"] for every airline
    can = ["record", "check"]

Keys are random and long (256 bits), so a fast hash is enough to store them: a slow password
hash only slows the guessing of low-entropy secrets. The service keeps only the digests,
compares them in constant time, and never logs a key or a digest. `kiusys-app new-key NAME
--airline AR --can record` makes a key and prints its entry.
"""

import hashlib
import hmac
import re
import secrets
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from kiusys_app.models import AIRLINE_PATTERN, AIRLINE_RULE, airline_of

KEY_PREFIX = "kiu_"
ALL_AIRLINES = "*"
_FIELDS = ("key_sha256", "airlines", "can")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_AIRLINE = re.compile(AIRLINE_PATTERN)
NAME_RULE = "1 to 63 of a-z, 0-9, _ and -, starting with a letter or a digit"


class Permission(StrEnum):
    RECORD = "record"
    CHECK = "check"
    # Read usage per day or month, for billing (`GET /v1/usage`).
    USAGE = "usage"


# How a refusal names each right: the calls it opens, and those calls for one airline.
_WORDS = {
    Permission.RECORD: ("record transactions", "record routes of"),
    Permission.CHECK: ("check transactions", "check routes of"),
    Permission.USAGE: ("read usage", "read the usage of"),
}


class ClientsError(ValueError):
    """The clients file cannot be used; the message names the client and what is wrong."""


@dataclass(frozen=True)
class Client:
    name: str
    # None: every airline.
    airlines: frozenset[str] | None
    can: frozenset[Permission]
    # Whether its idempotency keys are its own (a named client's), or shared by every caller
    # (the unscoped shorthand of KIUSYS_API_KEYS, and an open service).
    scoped: bool = True

    def refusal(
        self, permission: Permission, routes: Iterable[str], airlines: Iterable[str] = ()
    ) -> str | None:
        """Why this client may not do `permission` on `routes` and `airlines`; None when it
        may."""
        doing, of = _WORDS[permission]
        if permission not in self.can:
            return f"this client may not {doing}"
        if self.airlines is None:
            return None
        outside = sorted(({airline_of(route) for route in routes} | set(airlines)) - self.airlines)
        if outside:
            return f"this client may not {of} airline {', '.join(outside)}"
        return None

    def idempotency_key(self, key: str) -> str:
        """Where the store keeps `key`: under the client's name, so that two clients' equal
        keys never meet (client names cannot hold a `/`)."""
        return f"{self.name}/{key}" if self.scoped else key


# Who calls an open service (no keys set), or with no key: labelled "-" in the log and the
# metrics, as the common log format writes a missing user. No client can be named so (a name
# starts with a letter or a digit).
ANONYMOUS = "-"
ANYONE = Client(ANONYMOUS, None, frozenset(Permission), scoped=False)
# The shorthand's one client.
SHORTHAND = "default"


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class Clients:
    """The clients, found by a presented key's digest; empty for an open service."""

    def __init__(self, by_digest: dict[bytes, Client]) -> None:
        self._by_digest = by_digest

    def __bool__(self) -> bool:
        return bool(self._by_digest)

    def find(self, key: str) -> Client | None:
        """The client whose key this is: compared with every digest in constant time, so that
        timing tells neither whether nor where it matched."""
        presented = digest_of(key)
        found = None
        for digest, client in self._by_digest.items():
            if hmac.compare_digest(presented, digest):
                found = client
        return found

    @classmethod
    def unscoped(cls, keys: Iterable[str]) -> "Clients":
        """The shorthand: one client, `default`, with every right, whose idempotency keys are
        not scoped (as before there were clients)."""
        client = Client(SHORTHAND, None, frozenset(Permission), scoped=False)
        return cls({digest_of(key): client for key in keys})

    @classmethod
    def from_file(cls, path: Path) -> "Clients":
        try:
            document = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ClientsError(f"cannot read it ({exc.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ClientsError(f"it is not TOML ({exc})") from None
        unknown = sorted(set(document) - {"clients"})
        if unknown:
            raise ClientsError(f"unknown table or field {unknown[0]!r} (allowed: clients)")
        listed = document.get("clients", {})
        if not isinstance(listed, dict) or not listed:
            raise ClientsError("it is set but holds no client ([clients.NAME] tables)")
        by_digest: dict[bytes, Client] = {}
        for name, entry in listed.items():
            client, digests = _client(name, entry)
            for digest in digests:
                if digest in by_digest:
                    raise ClientsError(
                        f"client {name!r}: a key_sha256 is client "
                        f"{by_digest[digest].name!r}'s too; a key belongs to one client"
                    )
                by_digest[digest] = client
        return cls(by_digest)


def _client(name: str, entry: Any) -> tuple[Client, list[bytes]]:
    """One [clients.NAME] table, checked: the client and its keys' digests."""
    where = f"client {name!r}"
    if not _NAME.fullmatch(name):
        raise ClientsError(f"{where}: a client's name is {NAME_RULE}")
    if not isinstance(entry, dict):
        raise ClientsError(f"{where}: expected a table with {', '.join(_FIELDS)}")
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise ClientsError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(_FIELDS)})")
    missing = [field for field in _FIELDS if field not in entry]
    if missing:
        raise ClientsError(f"{where}: {missing[0]} is missing")
    digests = [_digest(where, value) for value in _strings(where, "key_sha256", entry)]
    airlines = [_airline(where, value) for value in _strings(where, "airlines", entry)]
    if ALL_AIRLINES in airlines and len(airlines) > 1:
        raise ClientsError(f"{where}: airlines is ['*'] alone, or a list of airline codes")
    can = [_permission(where, value) for value in _strings(where, "can", entry)]
    scope = None if airlines == [ALL_AIRLINES] else frozenset(airlines)
    return Client(name, scope, frozenset(can)), digests


def _strings(where: str, field: str, entry: dict[str, Any]) -> list[str]:
    values = entry[field]
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ClientsError(f"{where}: {field} must be a list of one or more strings")
    return values


def _digest(where: str, value: str) -> bytes:
    if _DIGEST.fullmatch(value.lower()):
        return bytes.fromhex(value)
    if value.startswith(KEY_PREFIX) or len(value) >= 16:
        raise ClientsError(
            f"{where}: key_sha256 holds a key in clear text, not its SHA-256; put only the "
            "hash in the file (kiusys-app new-key prints it)"
        )
    raise ClientsError(f"{where}: {value!r} is not a SHA-256 digest (64 hex digits)")


def _airline(where: str, value: str) -> str:
    code = value.upper()
    if code == ALL_AIRLINES or _AIRLINE.fullmatch(code):
        return code
    raise ClientsError(f"{where}: {value!r} is not {AIRLINE_RULE}, nor '*'")


def _permission(where: str, value: str) -> Permission:
    try:
        return Permission(value)
    except ValueError:
        allowed = ", ".join(Permission)
        raise ClientsError(f"{where}: unknown permission {value!r} (allowed: {allowed})") from None


def new_key(name: str, airlines: list[str], can: list[str]) -> tuple[str, str]:
    """`kiusys-app new-key NAME --airline CODE --can RIGHT`: a new key (`kiu_` and 256 random
    bits), and its entry for the clients file, which holds only the key's digest. The client
    gets the airlines and rights named, and no other: every airline only as `*`, by name."""
    where = f"client {name!r}"
    if not _NAME.fullmatch(name):
        raise ClientsError(f"a client's name is {NAME_RULE}")
    codes = list(dict.fromkeys(_airline(where, value) for value in airlines))
    if not codes or (ALL_AIRLINES in codes and len(codes) > 1):
        raise ClientsError(f"{where}: name its airlines, or '*' alone for every airline")
    rights = list(dict.fromkeys(_permission(where, value) for value in can))
    if not rights:
        raise ClientsError(f"{where}: name what it may do: record, check, usage, or several")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = f"""
[clients.{name}]
key_sha256 = ["{digest_of(key).hex()}"]
airlines = [{", ".join(f'"{code}"' for code in codes)}]
can = [{", ".join(f'"{right}"' for right in rights)}]
"""
    return key, entry
