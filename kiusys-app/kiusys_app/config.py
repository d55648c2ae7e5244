"""Runtime settings, read once from the environment, and the checks made before start-up."""

import difflib
import functools
import os
import re
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from kiusys_app.clients import Clients, ClientsError


class StoreKind(StrEnum):
    SQLITE = "sqlite"
    DYNAMODB = "dynamodb"


class ConfigError(RuntimeError):
    """A setting has a value the service refuses to start with."""


# DynamoDB's own rule for table names.
TableName = Annotated[str, Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KIUSYS_", extra="ignore", populate_by_name=True)

    store: StoreKind = StoreKind.SQLITE
    sqlite_path: Path = Path("data/kiusys.sqlite3")
    table_name: TableName = "flights-db"
    idempotency_table_name: TableName = "flights-db-idempotency"
    # Comma-separated API keys, and/or a file with one key per line (what a Secret mounts).
    api_keys: str | None = None
    api_keys_file: Path | None = None
    # Named clients, each with its keys' digests, airlines and rights (`kiusys_app.clients`).
    clients_file: Path | None = None
    # Checked against botocore's partitions in load_settings, which says what is wrong in words.
    aws_region: Annotated[
        str | None, Field(validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    ] = None
    aws_endpoint_url: Annotated[
        str | None, Field(validation_alias="AWS_ENDPOINT_URL", pattern=r"^https?://\S+$")
    ] = None
    # The certificates that an HTTPS endpoint's certificate is checked against, instead of the
    # system's (an emulator's own CA, as `make local-aws` sets up).
    aws_ca_bundle: Annotated[Path | None, Field(validation_alias="AWS_CA_BUNDLE")] = None
    # Where the tables are global tables: every region whose pods write, comma-separated, the
    # home region first (`kiusys_app.stores.dynamodb.regions`). Unset: one region.
    regions: str | None = None


# Shorter keys are guessable; a key is a secret, not a password to remember.
MIN_API_KEY_LENGTH = 16
_API_KEY = re.compile(r"[\x21-\x7e]+")


def _checked_keys(setting: str, keys: list[str]) -> list[str]:
    """The keys of one source, each strong enough; a set source must yield at least one."""
    keys = [key for key in keys if key]
    if not keys:
        raise ConfigError(
            f"invalid setting {setting}: it is set but holds no key; unset it to run without keys"
        )
    for key in keys:
        if len(key) < MIN_API_KEY_LENGTH or not _API_KEY.fullmatch(key):
            raise ConfigError(
                f"invalid setting {setting}: every key needs at least {MIN_API_KEY_LENGTH} "
                "printable ASCII characters and no spaces"
            )
    return keys


def load_api_keys(settings: Settings) -> frozenset[str]:
    """Every configured API key. Fails closed: a source that is set but unreadable, empty or
    holding a weak key raises ConfigError naming that source; no keys only when none is set."""
    keys: list[str] = []
    if settings.api_keys is not None:
        listed = [key.strip() for key in settings.api_keys.split(",")]
        keys += _checked_keys("KIUSYS_API_KEYS", listed)
    if settings.api_keys_file is not None:
        setting = f"KIUSYS_API_KEYS_FILE ({settings.api_keys_file})"
        try:
            lines = settings.api_keys_file.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"invalid setting {setting}: cannot read it ({exc.strerror})"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"invalid setting {setting}: it is not UTF-8 text") from None
        listed = [line.strip() for line in lines if not line.lstrip().startswith("#")]
        keys += _checked_keys(setting, listed)
    return frozenset(keys)


def load_clients(settings: Settings) -> Clients:
    """The clients: from the clients file, or the API keys' one unscoped client (the shorthand
    for `make run` and the tests), never both; none for an open service. Fails closed, in one
    line that names the setting, the file and the client."""
    keys = load_api_keys(settings)
    if settings.clients_file is None:
        return Clients.unscoped(keys)
    setting = f"KIUSYS_CLIENTS_FILE ({settings.clients_file})"
    if keys:
        raise ConfigError(
            f"invalid setting {setting}: set it or KIUSYS_API_KEYS/KIUSYS_API_KEYS_FILE, not both"
        )
    try:
        return Clients.from_file(settings.clients_file)
    except ClientsError as exc:
        raise ConfigError(f"invalid setting {setting}: {exc}") from None


def _env_name(loc: str) -> str:
    """The environment variable behind an error location: an alias as-is, else prefixed."""
    return loc if loc.isupper() else f"KIUSYS_{loc.upper()}"


def load_settings() -> Settings:
    """Read the settings from the environment; a bad value raises a one-line ConfigError."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(f"invalid setting {_env_name(field)}: {first['msg']}") from None
    if settings.aws_region is not None and dynamodb_endpoint(settings.aws_region) is None:
        raise ConfigError(f"invalid setting AWS_REGION: {unknown_region(settings.aws_region)}")
    if settings.store is StoreKind.DYNAMODB:
        if settings.aws_region is None:
            raise ConfigError("invalid setting AWS_REGION: required when KIUSYS_STORE=dynamodb")
        tls_context(settings)  # a bundle that is set but unusable stops the start-up
        store_regions(settings)
    return settings


def store_regions(settings: Settings) -> tuple[str, ...]:
    """KIUSYS_REGIONS as a tuple (empty when unset), each a known region, none twice, this
    process's region (AWS_REGION) among them; ConfigError otherwise."""
    if settings.regions is None:
        return ()
    regions = tuple(region.strip() for region in settings.regions.split(","))
    setting = f"invalid setting KIUSYS_REGIONS ({settings.regions})"
    for region in regions:
        if dynamodb_endpoint(region) is None:
            raise ConfigError(f"{setting}: {unknown_region(region)}")
    if len(set(regions)) < len(regions):
        raise ConfigError(f"{setting}: a region is listed twice")
    if settings.aws_region not in regions:
        raise ConfigError(
            f"{setting}: it does not list AWS_REGION ({settings.aws_region}), where this "
            "process writes"
        )
    return regions


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The TLS settings for the store's endpoint: the system's CAs, or AWS_CA_BUNDLE's."""
    try:
        return ssl.create_default_context(cafile=settings.aws_ca_bundle)
    except ssl.SSLError as exc:  # a subclass of OSError: first
        reason = f"no certificate could be read from it ({exc.reason})"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise ConfigError(f"invalid setting AWS_CA_BUNDLE: {settings.aws_ca_bundle}: {reason}")


@functools.cache
def _partitions() -> list[dict[str, Any]]:
    """The AWS partitions in botocore's endpoint data: each names its regions, a pattern for
    new ones, and its DNS suffix."""
    from botocore.loaders import create_loader

    return create_loader().load_data("endpoints")["partitions"]  # type: ignore[no-any-return]


@functools.cache
def dynamodb_endpoint(region: str) -> str | None:
    """DynamoDB's public endpoint in `region`; None for a region that no partition knows."""
    for partition in _partitions():
        if region in partition["regions"] or re.fullmatch(partition["regionRegex"], region):
            return f"https://dynamodb.{region}.{partition['dnsSuffix']}"
    return None


def unknown_region(region: str) -> str:
    """A sentence for a region that no partition knows, with the nearest known names."""
    known = [name for partition in _partitions() for name in partition["regions"]]
    nearest = difflib.get_close_matches(region.lower(), known, n=3, cutoff=0.6)
    also = f"; did you mean {' or '.join(nearest)}?" if nearest else ""
    return f"{region!r} is not an AWS region name such as us-east-1{also}"


def unusable_path_reason(path: Path) -> str | None:
    """Why the service could not create or write a database at `path`; None if it can.

    Looks without creating anything, so that a bad path is refused before the server starts.
    """
    try:
        existing = next(p for p in (path, *path.parents) if p.exists())
    except OSError as exc:  # a name longer than the file system allows, for one
        return exc.strerror
    if existing == path:
        if path.is_dir():
            return "it is a directory"
        if not os.access(path, os.R_OK | os.W_OK):
            return "the file is not readable and writable"
        return None
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot create it: {existing} is not writable"
    return None


def check_sqlite_path(settings: Settings) -> None:
    """Refuse, with a ConfigError that names the setting and the path, a path we cannot use."""
    if settings.store is StoreKind.SQLITE:
        path = settings.sqlite_path.absolute()
        reason = unusable_path_reason(path)
        if reason is not None:
            raise ConfigError(f"invalid setting KIUSYS_SQLITE_PATH: {path}: {reason}")
