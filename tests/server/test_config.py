"""Settings: CHARTER_* variables are parsed by type, overrides win, and every rule names its setting."""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from charter_server.config import Settings, SettingsError, console_trusted_proxies

from ._support import run_cli, run_cli_process


def test_defaults_are_valid() -> None:
    settings = Settings.from_env({})

    assert settings == Settings()


def test_environment_variables_are_parsed_by_type() -> None:
    env = {
        "CHARTER_LISTEN": "0.0.0.0:6000",
        "CHARTER_DATABASE_URL": "postgresql://charter@db.internal/charter",
        "CHARTER_MIGRATE": "yes",
        "CHARTER_MAX_WORKERS": "4",
        "CHARTER_MAX_MESSAGE_BYTES": "1024",
        "CHARTER_SHUTDOWN_GRACE_SECONDS": "2.5",
        "CHARTER_AUTH_CACHE_SECONDS": "0",
        "CHARTER_LOG_FORMAT": "console",
        "UNRELATED": "ignored",
    }

    settings = Settings.from_env(env)

    assert settings.listen == "0.0.0.0:6000"
    assert settings.port == 6000
    assert settings.database_url == "postgresql://charter@db.internal/charter"
    assert settings.migrate is True
    assert settings.max_workers == 4
    assert settings.max_message_bytes == 1024
    assert settings.shutdown_grace_seconds == 2.5
    assert settings.auth_cache_seconds == 0.0
    assert settings.log_format == "console"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert Settings.from_env({"CHARTER_MIGRATE": raw}).migrate is expected


def test_overrides_win_over_the_environment_and_none_means_unset() -> None:
    env = {"CHARTER_MAX_WORKERS": "4", "CHARTER_LOG_LEVEL": "debug"}

    settings = Settings.from_env(env, max_workers=8, log_level=None)

    assert settings.max_workers == 8
    assert settings.log_level == "debug"


def test_from_env_reads_the_process_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CHARTER_MAX_CONCURRENT_RPCS", "7")

    assert Settings.from_env().max_concurrent_rpcs == 7


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("CHARTER_MIGRATE", "maybe"),
        ("CHARTER_MAX_WORKERS", "four"),
        ("CHARTER_MAX_WORKERS", "1.5"),
        ("CHARTER_SHUTDOWN_GRACE_SECONDS", "soon"),
    ],
)
def test_unparseable_values_name_the_setting(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: raw})

    assert variable in str(caught.value)


def _file(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text("not really PEM; validation only checks the file exists\n")
    return str(path)


INVALID: list[tuple[str, dict[str, Any]]] = [
    ("listen", {"listen": "no-port"}),
    ("listen", {"listen": ":50051"}),
    ("listen", {"listen": "127.0.0.1:99999"}),
    ("listen", {"listen": "127.0.0.1:http"}),
    ("metrics_listen", {"metrics_listen": "localhost"}),
    ("database_url", {"database_url": "not a url"}),
    ("database_url", {"database_url": "mysql://root@localhost/charter"}),
    ("database_url", {"database_url": "sqlite://"}),
    ("database_url", {"database_url": "sqlite:///:memory:"}),
    ("log_format", {"log_format": "xml"}),
    ("log_level", {"log_level": "verbose"}),
    ("max_workers", {"max_workers": 0}),
    ("max_concurrent_rpcs", {"max_concurrent_rpcs": 0}),
    ("max_message_bytes", {"max_message_bytes": -1}),
    ("db_busy_timeout_ms", {"db_busy_timeout_ms": 0}),
    ("db_pool_size", {"db_pool_size": 0}),
    ("shutdown_grace_seconds", {"shutdown_grace_seconds": -0.5}),
    ("auth_cache_seconds", {"auth_cache_seconds": -1.0}),
    ("environment", {"environment": "staging"}),
    ("key_encryption_key", {"environment": "production"}),
    ("key_encryption_key", {"key_encryption_key": "not base64 at all!"}),
    ("key_encryption_key", {"key_encryption_key": base64.b64encode(bytes(16)).decode()}),
    ("key_encryption_key", {"key_encryption_key": base64.b64encode(bytes(33)).decode()}),
    ("key_encryption_key", {"key_encryption_key": base64.urlsafe_b64encode(b"\xff" * 32).decode()}),
    ("key_encryption_key_file", {"key_encryption_key_file": "/nonexistent/charter/kek"}),
    ("max_grant_lifetime_days", {"max_grant_lifetime_days": 0}),
    ("clock_skew_seconds", {"clock_skew_seconds": -1.0}),
    ("clock_skew_seconds", {"clock_skew_seconds": 3601.0}),
    ("usage_window_days", {"usage_window_days": 0}),
    ("usage_window_days", {"usage_window_days": 3661}),
    ("issuer", {"issuer": " "}),
    ("issuer", {"issuer": "i" * 201}),
    ("max_streams_per_key", {"max_streams_per_key": 0}),
    ("max_unauthenticated_streams", {"max_unauthenticated_streams": 0}),
    ("max_streams", {"max_streams": 0}),
    ("max_streams_per_connection", {"max_streams_per_connection": -1}),
    ("handshake_timeout_seconds", {"handshake_timeout_seconds": 0.0}),
    ("handshake_timeout_seconds", {"handshake_timeout_seconds": 301.0}),
    ("keepalive_seconds", {"keepalive_seconds": 0.5}),
    ("keepalive_seconds", {"keepalive_seconds": 7201.0}),
    ("keepalive_timeout_seconds", {"keepalive_timeout_seconds": 0.0}),
    ("keepalive_timeout_seconds", {"keepalive_timeout_seconds": 601.0}),
    ("min_client_ping_seconds", {"min_client_ping_seconds": 0.0}),
    ("min_client_ping_seconds", {"min_client_ping_seconds": 3601.0}),
    ("processes", {"processes": 0}),
    ("processes", {"processes": 257}),
    ("authorization_lease_seconds", {"authorization_lease_seconds": 0.001}),
    ("authorization_lease_seconds", {"authorization_lease_seconds": 61.0}),
]


@pytest.mark.parametrize(("name", "values"), INVALID, ids=[f"{n}-{i}" for i, (n, _) in enumerate(INVALID)])
def test_every_rule_names_its_setting(name: str, values: dict[str, Any]) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({}, **values)
    with pytest.raises(SettingsError) as direct:
        Settings(**values).validate()

    message = str(caught.value)
    assert name in message
    assert f"CHARTER_{name.upper()}" in message
    assert str(direct.value) == message


def test_tls_files_must_come_together_and_exist(tmp_path: Path) -> None:
    cert, key, ca = _file(tmp_path, "cert.pem"), _file(tmp_path, "key.pem"), _file(tmp_path, "ca.pem")
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "cert without key": ({"tls_cert_file": cert}, "tls_cert_file"),
        "key without cert": ({"tls_key_file": key}, "tls_cert_file"),
        "client CA without server cert": ({"tls_client_ca_file": ca}, "tls_client_ca_file"),
        "missing cert": ({"tls_cert_file": str(tmp_path / "nope.pem"), "tls_key_file": key}, "tls_cert_file"),
        "missing key": ({"tls_cert_file": cert, "tls_key_file": str(tmp_path / "nope.pem")}, "tls_key_file"),
        "missing CA": (
            {"tls_cert_file": cert, "tls_key_file": key, "tls_client_ca_file": str(tmp_path)},
            "tls_client_ca_file",
        ),
    }
    named: dict[str, str] = {}
    for case, (values, _) in cases.items():
        with pytest.raises(SettingsError) as caught:
            Settings(**values).validate()
        named[case] = str(caught.value)

    for case, (_, name) in cases.items():
        assert name in named[case], case
    Settings(tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=ca).validate()


# Grants and signing keys ----------------------------------------------------------------------


def _kek() -> tuple[str, bytes]:
    raw = os.urandom(32)
    return base64.b64encode(raw).decode(), raw


def test_grant_settings_are_parsed_from_the_environment() -> None:
    text, raw = _kek()
    env = {
        "CHARTER_ENVIRONMENT": "production",
        "CHARTER_KEY_ENCRYPTION_KEY": text,
        "CHARTER_ISSUER": "charter.example",
        "CHARTER_MAX_GRANT_LIFETIME_DAYS": "30",
        "CHARTER_CLOCK_SKEW_SECONDS": "5.5",
    }

    settings = Settings.from_env(env)

    assert (settings.environment, settings.issuer) == ("production", "charter.example")
    assert (settings.max_grant_lifetime_days, settings.clock_skew_seconds) == (30, 5.5)
    assert settings.kek() == raw


def test_grant_settings_have_documented_defaults() -> None:
    settings = Settings()

    assert (settings.environment, settings.issuer) == ("development", "charter")
    assert (settings.max_grant_lifetime_days, settings.clock_skew_seconds) == (366, 60.0)
    assert settings.kek() is None


def test_the_usage_window_defaults_to_60_days_and_comes_from_the_environment() -> None:
    assert Settings().usage_window_days == 60
    assert Settings.from_env({"CHARTER_USAGE_WINDOW_DAYS": "90"}).usage_window_days == 90


def test_serving_settings_come_from_the_environment_and_the_lease_is_the_deployments_by_default() -> None:
    settings = Settings.from_env(
        {
            "CHARTER_MAX_STREAMS_PER_KEY": "7",
            "CHARTER_MAX_UNAUTHENTICATED_STREAMS": "8",
            "CHARTER_MAX_STREAMS": "9",
            "CHARTER_PROCESSES": "3",
            "CHARTER_MAX_STREAMS_PER_CONNECTION": "10",
            "CHARTER_HANDSHAKE_TIMEOUT_SECONDS": "2.5",
            "CHARTER_KEEPALIVE_SECONDS": "30",
            "CHARTER_KEEPALIVE_TIMEOUT_SECONDS": "5",
            "CHARTER_MIN_CLIENT_PING_SECONDS": "2",
        }
    )

    assert (settings.max_streams_per_key, settings.max_unauthenticated_streams, settings.max_streams) == (7, 8, 9)
    assert settings.processes == 3
    assert (settings.max_streams_per_connection, settings.handshake_timeout_seconds) == (10, 2.5)
    assert (settings.keepalive_seconds, settings.keepalive_timeout_seconds, settings.min_client_ping_seconds) == (
        30,
        5,
        2,
    )
    assert Settings().authorization_lease_seconds is None  # unset: keep the deployment's value
    assert Settings.from_env({"CHARTER_AUTHORIZATION_LEASE_SECONDS": "0.5"}).authorization_lease_seconds == 0.5


def test_the_kek_may_come_from_a_file(tmp_path: Path) -> None:
    text, raw = _kek()
    path = tmp_path / "kek"
    path.write_text(f"{text}\n")

    settings = Settings.from_env({"CHARTER_KEY_ENCRYPTION_KEY_FILE": str(path), "CHARTER_ENVIRONMENT": "production"})

    assert settings.kek() == raw


def test_a_kek_file_with_a_bad_key_names_the_file_setting(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    path.write_text("too short\n")

    with pytest.raises(SettingsError) as caught:
        Settings(key_encryption_key_file=str(path)).validate()

    assert "key_encryption_key_file" in str(caught.value)
    assert "too short" not in str(caught.value)


def test_the_kek_and_its_file_are_exclusive(tmp_path: Path) -> None:
    text, _ = _kek()
    path = tmp_path / "kek"
    path.write_text(text)

    with pytest.raises(SettingsError) as caught:
        Settings(key_encryption_key=text, key_encryption_key_file=str(path)).validate()

    assert "CHARTER_KEY_ENCRYPTION_KEY_FILE" in str(caught.value)
    assert text not in str(caught.value)


def test_production_without_a_kek_says_what_to_set() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings(environment="production").validate()

    message = str(caught.value)
    assert "key_encryption_key" in message
    assert "production" in message
    assert "CHARTER_KEY_ENCRYPTION_KEY_FILE" in message


def test_the_kek_is_never_shown() -> None:
    text, _ = _kek()
    settings = Settings(key_encryption_key=text)

    with pytest.raises(SettingsError) as bad:
        Settings(key_encryption_key=text[:-4]).validate()

    assert text not in repr(settings) and text not in str(settings)
    assert text[:-4] not in str(bad.value)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().listen = "0.0.0.0:1"  # type: ignore[misc]


# The command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "name"),
    [
        (["--max-workers", "0"], {}, "max_workers"),
        (["--listen", "nowhere"], {}, "listen"),
        ([], {"CHARTER_LOG_FORMAT": "xml"}, "log_format"),
        ([], {"CHARTER_ENVIRONMENT": "production"}, "key_encryption_key"),
        (
            [],
            {"CHARTER_DATABASE_URL": "mysql://root@localhost/a-rather-long-database-name-to-make-the-line-wrap"},
            "database_url",
        ),
    ],
)
def test_a_bad_setting_exits_2_with_one_line(args: list[str], env: dict[str, str], name: str) -> None:
    result = run_cli_process([*args, "migrate"], env)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert name in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_malformed_number_exits_2_without_a_traceback(clean_env: pytest.MonkeyPatch) -> None:
    result = run_cli(["migrate"], {"CHARTER_MAX_WORKERS": "many"})

    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_preloading_the_analysers_is_on_by_default_and_can_be_turned_off() -> None:
    assert Settings().preload is True
    assert Settings.from_env({"CHARTER_PRELOAD": "0"}).preload is False
    assert Settings.from_env({"CHARTER_PRELOAD": "off"}, preload=True).preload is True


def test_the_consoles_trusted_proxies_are_addresses_or_networks() -> None:
    parsed = console_trusted_proxies(" 10.0.0.1, 192.168.0.0/16,,::1 ")

    assert parsed == ("10.0.0.1", "192.168.0.0/16", "::1")
    assert console_trusted_proxies("") == ()


@pytest.mark.parametrize("raw", ["*", "localhost", "10.0.0.0/33", "10.0.0.1 10.0.0.2", ",".join(["10.0.0.1"] * 101)])
def test_bad_trusted_proxies_name_the_setting(raw: str) -> None:
    with pytest.raises(SettingsError) as raised:
        console_trusted_proxies(raw)

    assert "trusted_proxies" in str(raised.value)
    assert "CHARTER_CONSOLE_TRUSTED_PROXIES" in str(raised.value)


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--trusted-proxies", "*"], {}), ([], {"CHARTER_CONSOLE_TRUSTED_PROXIES": "proxy.internal"})],
)
def test_the_console_refuses_bad_trusted_proxies_with_exit_2(args: list[str], env: dict[str, str]) -> None:
    result = run_cli_process(["console", "--listen", "127.0.0.1:0", *args], env)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "trusted_proxies" in lines[0]
    assert "Traceback" not in result.stderr
