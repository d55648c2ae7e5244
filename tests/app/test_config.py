"""Settings: defaults, and a one-line refusal that names the bad setting, before serving."""

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kiusys_app.config import (
    ConfigError,
    Settings,
    StoreKind,
    check_sqlite_path,
    dynamodb_endpoint,
    load_api_keys,
    load_settings,
    store_regions,
)
from tests.support.app import sqlite_settings, started_app
from tests.support.processes import refusal, start_server


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    settings = load_settings()
    assert settings.store is StoreKind.SQLITE
    assert settings.table_name == "flights-db"
    assert settings.idempotency_table_name == "flights-db-idempotency"
    assert settings.aws_region is None


def test_aws_settings_are_read_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "sa-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    settings = Settings()
    assert (settings.aws_region, settings.aws_endpoint_url) == (
        "sa-east-1",
        "http://127.0.0.1:5000",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KIUSYS_STORE", "postgres"),
        ("KIUSYS_TABLE_NAME", "x"),
        ("KIUSYS_IDEMPOTENCY_TABLE_NAME", "bad name!"),
        ("AWS_REGION", "mars"),
        ("AWS_ENDPOINT_URL", "localhost:5000"),
    ],
)
def test_bad_value_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^invalid setting {name}: ") as raised:
        load_settings()
    assert "\n" not in str(raised.value)


def test_a_bad_value_says_what_is_allowed_in_one_exact_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIUSYS_STORE", "postgres")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert (
        str(raised.value) == "invalid setting KIUSYS_STORE: Input should be 'sqlite' or 'dynamodb'"
    )


def test_dynamodb_needs_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIUSYS_STORE", "dynamodb")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == "invalid setting AWS_REGION: required when KIUSYS_STORE=dynamodb"


def test_sqlite_path_under_a_file_is_refused_naming_setting_and_path(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "a-file" / "db" / "counts.sqlite3"
    with pytest.raises(ConfigError) as raised:
        check_sqlite_path(Settings(sqlite_path=path))
    assert str(raised.value) == (
        f"invalid setting KIUSYS_SQLITE_PATH: {path}: {tmp_path / 'a-file'} is not a directory"
    )
    assert not (tmp_path / "db").exists(), "the check creates nothing"


def test_sqlite_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        check_sqlite_path(Settings(sqlite_path=tmp_path))
    assert str(raised.value) == f"invalid setting KIUSYS_SQLITE_PATH: {tmp_path}: it is a directory"


def denying(denied: int) -> Callable[[Any, int], bool]:
    """An `os.access` that refuses any check asking for one of the `denied` rights (the tests run
    as root, whom the real one never refuses)."""
    return lambda path, mode: not mode & denied


@pytest.mark.parametrize(
    ("denied", "existing", "reason"),
    [
        (os.W_OK, True, "the file is not readable and writable"),
        (os.R_OK, True, "the file is not readable and writable"),
        (os.W_OK, False, "cannot create it: {tmp} is not writable"),
        (os.X_OK, False, "cannot create it: {tmp} is not writable"),
    ],
    ids=["file-not-writable", "file-not-readable", "dir-not-writable", "dir-not-searchable"],
)
def test_a_path_without_the_rights_it_needs_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, denied: int, existing: bool, reason: str
) -> None:
    database = tmp_path / "counts.sqlite3"
    if existing:
        database.write_bytes(b"")
    monkeypatch.setattr(os, "access", denying(denied))
    with pytest.raises(ConfigError) as raised:
        check_sqlite_path(Settings(sqlite_path=database))
    expected = reason.format(tmp=tmp_path)
    assert str(raised.value) == f"invalid setting KIUSYS_SQLITE_PATH: {database}: {expected}"


def test_an_existing_database_file_is_accepted(tmp_path: Path) -> None:
    database = tmp_path / "counts.sqlite3"
    database.write_bytes(b"")
    check_sqlite_path(Settings(sqlite_path=database))


def test_a_new_sqlite_path_in_a_writable_directory_is_accepted(tmp_path: Path) -> None:
    check_sqlite_path(Settings(sqlite_path=tmp_path / "new" / "dirs" / "counts.sqlite3"))
    assert not (tmp_path / "new").exists()


def test_sqlite_path_is_not_checked_for_dynamodb(tmp_path: Path) -> None:
    check_sqlite_path(Settings(store="dynamodb", sqlite_path=tmp_path))


LONG_NAME = "x" * 300
REFUSED = {
    "store": (
        {"KIUSYS_STORE": "postgres"},
        "invalid setting KIUSYS_STORE: Input should be 'sqlite' or 'dynamodb'",
    ),
    "sqlite-path": (
        {"KIUSYS_SQLITE_PATH": "{tmp}/a-file/counts.sqlite3"},
        "invalid setting KIUSYS_SQLITE_PATH: {tmp}/a-file/counts.sqlite3: "
        "{tmp}/a-file is not a directory",
    ),
    "sqlite-path-too-long": (
        {"KIUSYS_SQLITE_PATH": f"{{tmp}}/{LONG_NAME}.sqlite3"},
        f"invalid setting KIUSYS_SQLITE_PATH: {{tmp}}/{LONG_NAME}.sqlite3: File name too long",
    ),
    "sqlite-path-not-a-database": (
        {"KIUSYS_SQLITE_PATH": "{tmp}/not-a-database"},
        "invalid setting KIUSYS_SQLITE_PATH: {tmp}/not-a-database: sqlite: file is not a database",
    ),
    "table-name": (
        {"KIUSYS_TABLE_NAME": "ab"},
        "invalid setting KIUSYS_TABLE_NAME: String should have at least 3 characters",
    ),
    "idempotency-table-name": (
        {"KIUSYS_IDEMPOTENCY_TABLE_NAME": "keys/table"},
        "invalid setting KIUSYS_IDEMPOTENCY_TABLE_NAME: String should match pattern",
    ),
    "region-missing": (
        {"KIUSYS_STORE": "dynamodb"},
        "invalid setting AWS_REGION: required when KIUSYS_STORE=dynamodb",
    ),
    "region-malformed": (
        {"AWS_REGION": "Mars"},
        "invalid setting AWS_REGION: 'Mars' is not an AWS region name such as us-east-1",
    ),
    "region-misspelt": (
        {"KIUSYS_STORE": "dynamodb", "AWS_REGION": "us-east1"},
        "invalid setting AWS_REGION: 'us-east1' is not an AWS region name such as us-east-1; "
        "did you mean us-east-1",
    ),
    "ca-bundle-missing": (
        {"KIUSYS_STORE": "dynamodb", "AWS_REGION": "us-east-1", "AWS_CA_BUNDLE": "{tmp}/none.pem"},
        "invalid setting AWS_CA_BUNDLE: {tmp}/none.pem: No such file or directory",
    ),
    "ca-bundle-without-certificates": (
        {"KIUSYS_STORE": "dynamodb", "AWS_REGION": "us-east-1", "AWS_CA_BUNDLE": "{tmp}/a-file"},
        "invalid setting AWS_CA_BUNDLE: {tmp}/a-file: no certificate could be read from it",
    ),
    "region-of-no-partition": (
        {"KIUSYS_STORE": "dynamodb", "AWS_REGION": "xx-nowhere-9"},
        "invalid setting AWS_REGION: 'xx-nowhere-9' is not an AWS region name such as us-east-1",
    ),
    "endpoint-url": (
        {"AWS_ENDPOINT_URL": "localhost:4566"},
        "invalid setting AWS_ENDPOINT_URL: String should match pattern",
    ),
    "keys-file": (
        {"KIUSYS_API_KEYS_FILE": "{tmp}/missing"},
        "invalid setting KIUSYS_API_KEYS_FILE ({tmp}/missing): cannot read it "
        "(No such file or directory)",
    ),
    "weak-key": (
        {"KIUSYS_API_KEYS": "short", "KIUSYS_API_KEYS_FILE": "{tmp}/good-keys"},
        "invalid setting KIUSYS_API_KEYS: every key needs at least 16",
    ),
    "no-key-listed": (
        {"KIUSYS_API_KEYS": ",,,"},
        "invalid setting KIUSYS_API_KEYS: it is set but holds no key",
    ),
    "no-key-in-file": (
        {"KIUSYS_API_KEYS_FILE": "{tmp}/comments-only"},
        "invalid setting KIUSYS_API_KEYS_FILE ({tmp}/comments-only): it is set but holds no key",
    ),
    "metrics-dir-missing": (
        {"PROMETHEUS_MULTIPROC_DIR": "{tmp}/gone"},
        "invalid setting PROMETHEUS_MULTIPROC_DIR: {tmp}/gone: not a directory",
    ),
    "metrics-dir-a-file": (
        {"PROMETHEUS_MULTIPROC_DIR": "{tmp}/a-file"},
        "invalid setting PROMETHEUS_MULTIPROC_DIR: {tmp}/a-file: not a directory",
    ),
}


@pytest.mark.parametrize(("env", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_server_refuses_to_start_with_one_json_line(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "not-a-database").write_text("these are not the bytes of a SQLite file\n" * 100)
    (tmp_path / "comments-only").write_text("# rotated out\n\n   \n")
    (tmp_path / "good-keys").write_text("a-good-key-0123456789\n")
    env = {"KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3")} | {
        name: value.format(tmp=tmp_path) for name, value in env.items()
    }
    assert refusal(start_server(env)).startswith(expected.format(tmp=tmp_path))


@pytest.mark.parametrize("option", ["--port", "--metrics-port"])
def test_a_port_in_use_is_refused_in_one_line(tmp_path: Path, option: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        env = {"KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3")}
        message = refusal(start_server(env, option, port))
    assert message == f"invalid setting --host/{option}: 127.0.0.1:{port}: Address already in use"


BAD_ARGUMENTS = {
    "port-env": ({"PORT": "abc"}, [], "invalid setting PORT: 'abc' is not a whole number"),
    "port-option": ({}, ["--port", "abc"], "invalid argument: argument --port: 'abc' is not a"),
    "metrics-port-env": (
        {"KIUSYS_METRICS_PORT": "70000"},
        [],
        "invalid setting KIUSYS_METRICS_PORT: '70000' is not a whole number from 1 to 65535",
    ),
    "workers": ({}, ["--workers", "0"], "invalid argument: argument --workers: '0' is not a whole"),
    "host": ({}, ["--host", "no.such.host.invalid"], "invalid setting --host/--port: no.such."),
    "unknown-option": ({}, ["--colour"], "invalid argument: unrecognized arguments: --colour"),
}


@pytest.mark.parametrize(("env", "args", "expected"), BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS)
def test_a_bad_argument_or_address_is_refused_in_one_line(
    tmp_path: Path, env: dict[str, str], args: list[str], expected: str
) -> None:
    env = {"KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3"), **env}
    assert refusal(start_server(env, *args)).startswith(expected)


def test_log_names_the_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("kiusys_app")
    logger.addHandler(caplog.handler)
    try:
        with started_app(sqlite_settings(tmp_path)):
            pass
    finally:
        logger.removeHandler(caplog.handler)
    assert any(r.getMessage().startswith("using store sqlite: ") for r in caplog.records)


def test_api_keys_come_from_the_list_and_the_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(
        "# rotated 2026-11\nkey-from-file-0123456789\n\n  second-file-key-0123  \n"
    )
    settings = Settings(api_keys=" key-from-env-0123456789 ,", api_keys_file=keys_file)
    assert load_api_keys(settings) == {
        "key-from-env-0123456789",
        "key-from-file-0123456789",
        "second-file-key-0123",
    }


def test_no_api_keys_by_default() -> None:
    assert load_api_keys(load_settings()) == frozenset()


@pytest.mark.parametrize("keys", ["short", "has a space in it 0123", "nön-ascii-key-0123456"])
def test_weak_api_keys_are_refused_without_echoing_them(keys: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid setting KIUSYS_API_KEYS: ") as raised:
        load_api_keys(Settings(api_keys=keys))
    assert keys not in str(raised.value)


def test_unreadable_api_keys_file_is_refused_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError) as raised:
        load_api_keys(Settings(api_keys_file=missing))
    assert str(raised.value).startswith(f"invalid setting KIUSYS_API_KEYS_FILE ({missing}): ")


@pytest.mark.parametrize("listed", ["", ",,,", " , "])
def test_a_key_list_that_is_set_but_empty_fails_closed(listed: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid setting KIUSYS_API_KEYS: it is set but"):
        load_api_keys(Settings(api_keys=listed))


def test_comment_lines_of_the_key_file_are_skipped_however_indented(tmp_path: Path) -> None:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text("  # retired-key-0123456789abcdef\nkept-key-0123456789abcdef\n")
    assert load_api_keys(Settings(api_keys_file=keys_file)) == {"kept-key-0123456789abcdef"}


def test_a_key_file_with_only_comments_fails_closed(tmp_path: Path) -> None:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text("# the old key was rotated out\n\n")
    with pytest.raises(ConfigError, match=r"holds no key"):
        load_api_keys(Settings(api_keys_file=keys_file))


def test_a_weak_listed_key_is_blamed_on_the_list_not_on_a_good_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text("a-good-key-from-the-file-0123\n")
    with pytest.raises(ConfigError, match=r"^invalid setting KIUSYS_API_KEYS: every key"):
        load_api_keys(Settings(api_keys="short", api_keys_file=keys_file))


def test_a_key_of_16_characters_is_enough_and_15_are_not() -> None:
    assert load_api_keys(Settings(api_keys="k" * 16)) == {"k" * 16}
    with pytest.raises(ConfigError) as raised:
        load_api_keys(Settings(api_keys="k" * 15))
    assert str(raised.value) == (
        "invalid setting KIUSYS_API_KEYS: every key needs at least 16 printable ASCII characters "
        "and no spaces"
    )


def test_a_key_file_without_keys_is_refused_naming_the_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text("# rotated out\n\n")
    with pytest.raises(ConfigError) as raised:
        load_api_keys(Settings(api_keys_file=keys_file))
    assert str(raised.value).startswith(
        f"invalid setting KIUSYS_API_KEYS_FILE ({keys_file}): it is set but holds no key"
    )


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("us-east-1", "https://dynamodb.us-east-1.amazonaws.com"),
        ("cn-north-1", "https://dynamodb.cn-north-1.amazonaws.com.cn"),
        # Not yet listed anywhere, but the aws partition's pattern takes it.
        ("eu-south-9", "https://dynamodb.eu-south-9.amazonaws.com"),
        ("xx-nowhere-9", None),
    ],
)
def test_a_regions_endpoint_comes_from_its_partition(region: str, endpoint: str | None) -> None:
    assert dynamodb_endpoint(region) == endpoint


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"AWS_REGION": "us-east1"},
            "invalid setting AWS_REGION: 'us-east1' is not an AWS region name such as "
            "us-east-1; did you mean us-east-1 or us-west-1 or us-east-2?",
        ),
        (
            {"AWS_REGION": "eu-west"},
            "invalid setting AWS_REGION: 'eu-west' is not an AWS region name such as us-east-1; "
            "did you mean eu-west-3 or eu-west-2 or eu-west-1?",
        ),
        (
            {"AWS_REGION": "Mars"},
            "invalid setting AWS_REGION: 'Mars' is not an AWS region name such as us-east-1",
        ),
        (
            {"KIUSYS_STORE": "dynamodb", "AWS_REGION": "us-east-1", "AWS_CA_BUNDLE": "{tmp}/none"},
            "invalid setting AWS_CA_BUNDLE: {tmp}/none: No such file or directory",
        ),
    ],
    ids=["misspelt", "cut-short", "no-near-name", "ca-bundle-missing"],
)
def test_a_region_or_bundle_refused_in_process_names_the_nearest_regions_exactly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], line: str
) -> None:
    """The start-up table above, as load_settings raises it in this process."""
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == line.format(tmp=tmp_path)


def test_a_bundle_without_certificates_is_refused_in_process_naming_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "a-file"
    bundle.write_text("not a certificate\n")
    monkeypatch.setenv("KIUSYS_STORE", "dynamodb")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(
        f"invalid setting AWS_CA_BUNDLE: {bundle}: no certificate could be read from it ("
    )


def test_a_bundle_error_without_an_os_reason_is_named_by_its_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refused(cafile: str | None = None) -> None:
        raise OSError("the bundle is locked")  # no errno, so no strerror

    monkeypatch.setattr("ssl.create_default_context", refused)
    monkeypatch.setenv("KIUSYS_STORE", "dynamodb")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "bundle.pem"))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == (
        f"invalid setting AWS_CA_BUNDLE: {tmp_path / 'bundle.pem'}: the bundle is locked"
    )


@pytest.mark.parametrize(
    ("regions", "expected"),
    [
        ("us-east-1,eu-west-l", "'eu-west-l' is not an AWS region name such as us-east-1; did"),
        ("us-east-1,us-east-1", "a region is listed twice"),
        ("eu-west-1,sa-east-1", "it does not list AWS_REGION (us-east-1), where this process"),
    ],
)
def test_a_bad_region_list_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, regions: str, expected: str
) -> None:
    monkeypatch.setenv("KIUSYS_STORE", "dynamodb")
    monkeypatch.setenv("KIUSYS_REGIONS", regions)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(f"invalid setting KIUSYS_REGIONS ({regions}): {expected}")


def test_the_region_list_is_read_home_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIUSYS_STORE", "dynamodb")
    monkeypatch.setenv("KIUSYS_REGIONS", "eu-west-1, us-east-1")
    assert store_regions(load_settings()) == ("eu-west-1", "us-east-1")
    monkeypatch.delenv("KIUSYS_REGIONS")
    assert store_regions(load_settings()) == ()


NOT_UTF8 = b"\xff\xfe\x00not text \xc3\x28\n"
# Each file setting the service reads at start, with the settings it goes with.
FILE_SETTINGS = {
    "KIUSYS_API_KEYS_FILE": {},
    "KIUSYS_CLIENTS_FILE": {},
    "AWS_CA_BUNDLE": {"KIUSYS_STORE": "dynamodb", "AWS_REGION": "us-east-1"},
    "KIUSYS_SQLITE_PATH": {},
    "PROMETHEUS_MULTIPROC_DIR": {},
}
# What a file setting may name instead of a good file: bytes that are not UTF-8 text, a
# directory, nothing. A directory setting instead: a file, a directory holding a directory
# where its files go, nothing. (A missing SQLite file is no refusal: it is made, with its
# directories.)
BAD_FILES = {
    (setting, form)
    for setting in FILE_SETTINGS
    for form in ("not-utf8", "directory", "missing")
    if (setting, form) != ("KIUSYS_SQLITE_PATH", "missing")
}


def bad_file(tmp_path: Path, setting: str, form: str) -> Path:
    given = tmp_path / "given"
    if setting == "PROMETHEUS_MULTIPROC_DIR" and form != "missing":
        if form == "not-utf8":
            given.write_bytes(NOT_UTF8)
        else:
            (given / "counter_1.db").mkdir(parents=True)
    elif form == "not-utf8":
        given.write_bytes(NOT_UTF8)
    elif form == "directory":
        given.mkdir()
    return given


@pytest.mark.parametrize(("setting", "form"), sorted(BAD_FILES))
def test_every_file_setting_in_every_bad_form_is_one_json_line_and_exit_3(
    tmp_path: Path, setting: str, form: str
) -> None:
    env = {"KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3"), **FILE_SETTINGS[setting]}
    result = start_server({**env, setting: str(bad_file(tmp_path, setting, form))})
    assert refusal(result).startswith(f"invalid setting {setting}")
