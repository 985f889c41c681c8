"""`npo-adapter overview` refuses what it must not do, with a message and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapter.cli import app
from adapter.consumer.pdl import access_log
from adapter.store.engine import open_store
from tests.conftest import free_port


def consumer_toml(folder: Path, pki, *, min_reason: int = 15) -> Path:
    dead = f"https://127.0.0.1:{free_port()}"  # nothing listens: every national service is down
    platform = pki.client("platform")
    path = folder / "consumer.toml"
    path.write_text(f"""
[client]
cert = "{platform.cert}"
key = "{platform.key}"
ca = "{pki.ca_bundle}"
service_timeout = 2

[services]
consent_url = "{dead}"
blocking_url = "{dead}"
log_url = "{dead}"

[[source]]
name = "Ingen"
url = "{dead}"
logical_address = "SE2120001231-SYS1"

[[assignment]]
name = "Akutmottagningen"
care_unit = "SE2321000016-AKUT"
care_giver = "SE2321000016-RG01"

[emergency]
min_reason_length = {min_reason}
""", encoding="utf-8")
    return path


def run(config: Path, store: str, *extra: str):
    return CliRunner().invoke(app, ["overview", "191212121212", "--as", "SE2321000016-L001", "--unit",
                                    "SE2321000016-AKUT", "--config", str(config), "--store", store, *extra])


@pytest.mark.parametrize("reason", ["", "   ", "x", "akut", "\u200b" * 20, "akut\u2060\u200b" * 3])
def test_emergency_without_a_reason_of_substance_is_refused(tmp_path, pki, reason):
    store = f"sqlite:///{tmp_path}/cli.db"
    result = run(consumer_toml(tmp_path, pki), store, "--emergency", reason)
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "--emergency" in output and "minst 15 tecken" in output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert access_log.count(open_store(store)) == 0


def test_an_emergency_reason_with_control_characters_is_refused_not_a_crash():
    """The attacker's NUL characters reached the access log writer and ended in a 500 (and used up an emergency)."""
    from adapter.consumer.staff_settings import EmergencyPolicy, reason_problem

    assert "styrtecken" in (reason_problem("Medvetslös\x00 patient i chock", EmergencyPolicy()) or "")
    assert reason_problem("Medvetslös patient i chock", EmergencyPolicy()) is None


def test_consent_with_the_consent_service_down_is_a_clear_refusal(tmp_path, pki):
    store = f"sqlite:///{tmp_path}/cli.db"
    result = run(consumer_toml(tmp_path, pki), store, "--consent")
    assert result.exit_code == 2, result.output
    assert "the consent service could not be reached" in " ".join(result.output.split())
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert "191212121212" not in result.output
    assert access_log.count(open_store(store)) == 0  # nothing shown, nothing logged


def test_the_overview_is_logged_as_a_cli_access(tmp_path, pki):
    store = f"sqlite:///{tmp_path}/cli.db"
    result = run(consumer_toml(tmp_path, pki), store, "--emergency", "Medvetslös patient, akut läkemedelsgenomgång")
    assert result.exit_code == 0, result.output
    entry = access_log.entries(open_store(store))[-1]
    assert entry["authenticated_by"] == "cli" and entry["assignment_name"] == "Akutmottagningen"
