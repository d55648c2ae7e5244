"""Settings: defaults, and a one-line refusal that names the bad setting."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kiusys_app.config import ConfigError, Settings, StoreKind, get_settings, load_api_keys
from kiusys_app.main import app
from tests.support.processes import REPO_ROOT, free_port


@pytest.fixture(autouse=True)
def fresh_settings() -> None:
    get_settings.cache_clear()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    settings = get_settings()
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
        get_settings()
    assert "\n" not in str(raised.value)


def test_dynamodb_needs_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIUSYS_STORE", "dynamodb")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match="AWS_REGION"):
        get_settings()


def test_server_refuses_to_start_on_a_bad_value() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "kiusys_app.main:app", "--port", str(free_port())],
        cwd=REPO_ROOT,
        env={"KIUSYS_STORE": "postgres", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "invalid setting KIUSYS_STORE: Input should be 'sqlite' or 'dynamodb'" in result.stderr


def test_log_names_the_store(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("kiusys_app")
    logger.addHandler(caplog.handler)
    try:
        with TestClient(app):
            pass
    finally:
        logger.removeHandler(caplog.handler)
    assert any(r.getMessage().startswith("using store sqlite: ") for r in caplog.records)


def test_api_keys_come_from_the_list_and_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(
        "# rotated 2026-11\nkey-from-file-0123456789\n\n  second-file-key-0123  \n"
    )
    monkeypatch.setenv("KIUSYS_API_KEYS", " key-from-env-0123456789 ,")
    monkeypatch.setenv("KIUSYS_API_KEYS_FILE", str(keys_file))
    assert load_api_keys(get_settings()) == {
        "key-from-env-0123456789",
        "key-from-file-0123456789",
        "second-file-key-0123",
    }


def test_no_api_keys_by_default() -> None:
    assert load_api_keys(get_settings()) == frozenset()


@pytest.mark.parametrize("keys", ["short", "has a space in it 0123", "nön-ascii-key-0123456"])
def test_weak_api_keys_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, keys: str
) -> None:
    monkeypatch.setenv("KIUSYS_API_KEYS", keys)
    with pytest.raises(ConfigError, match=r"^invalid setting KIUSYS_API_KEYS: ") as raised:
        load_api_keys(get_settings())
    assert keys not in str(raised.value)


def test_unreadable_api_keys_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KIUSYS_API_KEYS_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"^invalid setting KIUSYS_API_KEYS_FILE: cannot read"):
        load_api_keys(get_settings())
