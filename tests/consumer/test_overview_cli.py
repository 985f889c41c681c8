"""`npo-adapter overview` refuses what it must not do, with a message and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapter.cli import app
from adapter.consumer.overview import load_config
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
    assert result.exit_code == 1, result.output  # its one source is down (the next test)
    entry = access_log.entries(open_store(store))[-1]
    assert entry["authenticated_by"] == "cli" and entry["assignment_name"] == "Akutmottagningen"


def test_overview_prints_records_whole_by_name_and_one_record_alone(tmp_path, pki, monkeypatch):
    """`overview --full` prints each record whole (text as text: markup in a note stays as written), with author,
    profession, time and names; `--record` shows and logs that record alone; each source is told as it answers."""
    import asyncio
    from dataclasses import replace
    from io import StringIO

    from rich.console import Console

    from adapter import cli
    from adapter.consumer.fetch import Source
    from adapter.consumer.overview import build_overview, overview_stream
    from adapter.consumer.pdl.decide import UserContext
    from adapter.gateway.tls import TlsContexts
    from tests.consumer.producers import NOTES_SOURCE, note, notes_resources, store_of
    from tests.consumer.world import ASSIGNMENTS, HOME, TOLVAN, running_world
    from tests.gateway.conftest import TlsServer, tls_files

    marked = note("markup", "Markup", {"contentType": "text/plain", "data": "W3JlZF1pbnRlIHLDtmR0Wy9yZWRd"})
    store = open_store(f"sqlite:///{tmp_path}/log.db")
    with running_world(tmp_path, pki) as world, \
            TlsServer(store_of(tmp_path, "j2", [*notes_resources(), marked]), TlsContexts(tls_files(pki))) as j2:
        config = replace(world.config, sources=(Source("Exempelby journal 2", j2.url, NOTES_SOURCE),))
        user = UserContext("SE2321000016-L001", ASSIGNMENTS[0].care_unit, ASSIGNMENTS[0].care_giver)
        buffer = StringIO()
        monkeypatch.setattr(cli, "console", Console(file=buffer, width=300))

        async def stream():
            told: set = set()
            async for ov in overview_stream(config, store, user, TOLVAN):
                cli._print_progress(ov, told)
            return ov

        ov = asyncio.run(stream())
        cli._print_overview(ov, ASSIGNMENTS[0].name, config.names, full=True)
        before = access_log.count(store)
        one = asyncio.run(build_overview(config, store, user, TOLVAN, only_document="note-markup"))
    out = buffer.getvalue()
    assert "Hämtar från 1 källa: Exempelby journal 2" in out
    assert f"✓ Exempelby journal 2 ({NOTES_SOURCE}): 6 uppgifter visas" in out
    assert "SLUTET AV ANTECKNINGEN" in out and "<script>alert('x')</script>" in out
    assert "[red]inte rödt[/red]" in out  # text, never rich markup
    assert "Dokumenterad av: Åsa Öberg, Sjuksköterska, 2024-05-02 14:35" in out
    assert "2024-05-02 14:35" in out and "Hemtjänsten Ängsvägen" in out and HOME in out
    assert "Bilaga 1: bild (image/png" in out and "länk (application/pdf) https://dokument.example.se/vardplan/1" in out
    assert [r.document_id for recs in one.records.values() for r in recs] == ["note-markup"]
    logged = access_log.entries(store)[before:]
    assert [e["resource_types"] for e in logged] == [["GetCareDocumentation:3"]]


@pytest.mark.parametrize("as_json", [False, True])
def test_an_overview_where_no_source_answered_says_where_it_asked_and_exits_1(tmp_path, pki, as_json):
    """Every source down: the overview said "inget att visa" without the address it tried, and exited 0, so a
    script could not tell it from a patient with nothing recorded."""
    store = f"sqlite:///{tmp_path}/cli.db"
    config = consumer_toml(tmp_path, pki)
    dead = next(line.split('"')[1] for line in config.read_text().splitlines() if line.startswith("url ="))
    result = run(config, store, "--emergency", "Medvetslös patient, akut läkemedelsgenomgång",
                 *(["--json"] if as_json else []))
    output = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert f"({dead}: could not connect" in output and "Ingen källa svarade" in output
    assert "Traceback" not in result.output


def test_sources_are_aggregating_at_the_national_address_or_when_marked(tmp_path, pki):
    path = consumer_toml(tmp_path, pki)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('[[assignment]]', '''[[source]]
name = "Nationellt"
url = "https://127.0.0.1:1"
logical_address = "5565594230"

[[source]]
name = "Regionens nav"
url = "https://127.0.0.1:1"
logical_address = "SE2321000016-HUB1"
aggregating = true

[[assignment]]''', 1), encoding="utf-8")
    assert [(s.logical_address, s.aggregating) for s in load_config(path).sources] == [
        ("SE2120001231-SYS1", False), ("5565594230", True), ("SE2321000016-HUB1", True)]
