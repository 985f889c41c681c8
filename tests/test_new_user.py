"""What a new user tripped over when following the README on a fresh clone (issue 14, "What a new user tripped
over"): each test names the item it covers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from io import StringIO
from pathlib import Path

import orjson
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from adapter.cli import app, store_label
from adapter.console import UNWRAPPED_WIDTH, stderr_console
from adapter.gateway.tls import TlsContexts
from adapter.rivta import client as rivta
from adapter.store.engine import open_store
from tests.conftest import free_port
from tests.gateway.conftest import TlsServer, tls_files
from tests.samples import bundle, condition, support_bundle

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "adapter.cli"]
DECLARATION = REPO / "config" / "contract-test.demo.toml"


def small_journal(folder: Path, *extra: dict) -> Path:
    resources = [e["resource"] for e in support_bundle()["entry"]]
    path = folder / "journal.json"
    path.write_bytes(orjson.dumps(bundle(*resources, condition("c-1", identifier="d-1"), *extra)))
    return path


# -- 1. one default store, and every command names it --------------------------------------------------------------
def test_item1_every_command_uses_and_names_the_one_default_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NPO_STORE_URL", raising=False)
    journal = small_journal(tmp_path)
    named = f"store: sqlite:///var/npo-adapter.db ({tmp_path / 'var' / 'npo-adapter.db'})"
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(journal)])
    assert ingested.exit_code == 0, ingested.output
    assert named in ingested.stderr
    status = runner.invoke(app, ["ei-status"])  # the store `ingest` wrote to, not an empty one beside it
    assert status.exit_code == 0 and named in status.stderr
    assert re.search(r"pending\s*│\s*[1-9]", status.stderr), status.stderr
    for command in (["audit", "verify"], ["db", "current"], ["db", "upgrade"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0 and named in result.stderr, (command, result.output)


def test_item1_make_run_uses_the_commands_default_store():
    dry = subprocess.run(["make", "-n", "-W", "pyproject.toml", "run"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    lines = [line for line in dry.splitlines() if "npo-adapter ingest" in line or "npo-adapter serve" in line]
    assert len(lines) == 2 and not any("--store" in line or "demo.db" in line for line in lines), dry


def test_item1_a_postgresql_store_is_named_without_its_password(backend):
    if backend != "postgresql":
        pytest.skip("PostgreSQL only")
    url = "postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:5432/test"
    assert store_label(url) == "postgresql+psycopg://postgres:***@127.0.0.1:5432/test"
    result = CliRunner().invoke(app, ["db", "current", "--store", url])
    assert "store: postgresql+psycopg://postgres:***@127.0.0.1:5432/test" in result.stderr
    assert "s3cret-pw" not in result.output


# -- 2. the README's walkthrough works as written ------------------------------------------------------------------
def test_item2_the_readme_puts_npo_adapter_on_the_path_before_the_first_example_uses_it():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    examples = "\n".join(re.findall(r"```(?:sh|python)\n(.*?)```", readme, re.S))
    activation = examples.index("\n. .venv/bin/activate")
    first_use = re.search(r"^\s*npo-adapter |^from fhirpy", examples, re.M)
    assert first_use is not None and activation < first_use.start()
    assert "make run" in examples[:activation]  # after the set-up, before the first example that needs it
    assert "make run PORT=" in readme  # item 9: the README says how to choose another port


# -- 6. a refused TLS client learns what was refused ---------------------------------------------------------------
@pytest.fixture(scope="module")
def mtls_producer(tmp_path_factory, pki):
    engine = open_store(f"sqlite:///{tmp_path_factory.mktemp('producer')}/p.db")
    with TlsServer(engine, TlsContexts(tls_files(pki))) as srv:
        yield srv


def contract_test(url: str, pki, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "contract-test", "--contract", "GetDiagnosis", "--data", str(DECLARATION),
                           "--endpoint", url, "--ca", str(pki.ca_bundle), *extra],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_item6_contract_test_without_a_certificate_is_one_connection_error_exit_2(mtls_producer, pki):
    res = contract_test(mtls_producer.url, pki)
    assert res.returncode == 2, res.stderr
    assert "cannot connect to the producer" in res.stderr and "No client certificate was offered" in res.stderr
    assert "closed the connection" in res.stderr and "No case was run" in res.stderr
    assert "FAIL" not in res.stderr and "ReadError" not in res.stderr


@pytest.mark.parametrize(("name", "said"), [("revoked", "revoked, or from a CA it does not trust"),
                                            ("expired", "it expired on"),
                                            ("noclientauth", "not for client authentication")])
def test_item6_a_refused_certificate_is_named_with_what_is_wrong_with_it(mtls_producer, pki, name, said):
    c = pki.client(name)
    res = contract_test(mtls_producer.url, pki, "--cert", str(c.cert), "--key", str(c.key))
    assert res.returncode == 2, res.stderr
    assert f"Offered {c.cert}" in res.stderr and said in res.stderr and "FAIL" not in res.stderr


def test_item6_nothing_listening_and_an_untrusted_server_are_said_so(mtls_producer, pki):
    res = contract_test(f"https://127.0.0.1:{free_port()}", pki)
    assert res.returncode == 2 and "connection refused: nothing listens" in res.stderr, res.stderr
    foreign = pki.client("foreign")  # a certificate of another CA is no CA bundle for this server
    res = subprocess.run([*CLI, "contract-test", "--contract", "GetDiagnosis", "--data", str(DECLARATION),
                          "--endpoint", mtls_producer.url, "--ca", str(foreign.cert)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 2 and "the server's certificate is not trusted" in res.stderr, res.stderr


def test_item6_the_overview_says_why_a_producer_could_not_be_reached(mtls_producer, pki):
    """The same words reach the consumer's per-source status (overview, staff page)."""
    import asyncio
    import ssl

    import httpx

    c = pki.client("platform")
    good = rivta.client_context(str(c.cert), str(c.key), str(pki.ca_bundle))
    assert asyncio.run(rivta.check_connection(mtls_producer.url, good)) is None

    async def without_a_certificate() -> rivta.Exchange:
        bare = ssl.create_default_context(cafile=str(pki.ca_bundle))
        async with httpx.AsyncClient(verify=bare, trust_env=False) as client:
            return await rivta.exchange(client, mtls_producer.url + "/x", b"<x/>", soap_action=None)

    ex = asyncio.run(without_a_certificate())
    assert isinstance(ex.error, rivta.Unreachable) and "closed the connection" in ex.error.why


# -- 8. no hard wrap into a file or a pipe -------------------------------------------------------------------------
def test_item8_output_into_a_pipe_is_not_wrapped(tmp_path, monkeypatch):
    reference = "Patient/" + "p" * 40
    journal = small_journal(tmp_path, condition("c-long-name-" + "x" * 40, patient=reference.split("/")[1]))
    res = subprocess.run([*CLI, "ingest", str(journal), "--store", f"sqlite:///{tmp_path}/s.db"],
                         capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "COLUMNS": "80"})
    assert res.returncode == 2
    line = next(x for x in res.stderr.splitlines() if x.startswith("rejected"))
    assert len(line) > 120 and f"{reference} is not in the input or the store" in line
    console = stderr_console()
    console.file = StringIO()
    assert console.width == UNWRAPPED_WIDTH and console.soft_wrap
    monkeypatch.setenv("COLUMNS", "80")  # exported for the terminal a CI job or a shell started in
    console = stderr_console()
    console.file = StringIO()
    assert console.width == UNWRAPPED_WIDTH


# -- 9. a port in use: bind first, then say where it serves ---------------------------------------------------------
def consumer_file(folder: Path, pki, cert: Path | None = None) -> Path:
    """config/consumer.dev.toml with the test PKI's files (`cert` instead of the client certificate)."""
    platform = pki.client("platform")
    text = (REPO / "config" / "consumer.dev.toml").read_text(encoding="utf-8")
    text = text.replace('cert = "certs/dev/client-consumer2.pem"', f'cert = "{cert or platform.cert}"')
    text = text.replace('key = "certs/dev/client-consumer2.key"', f'key = "{platform.key}"')
    text = text.replace('ca = "certs/dev/ca-bundle.pem"', f'ca = "{pki.ca_bundle}"')
    text = text.replace('crls = ["certs/dev/root-ca.crl.pem", "certs/dev/function-ca.crl.pem"]',
                        f'crls = ["{pki.crl_root}", "{pki.crl_function}"]')
    path = folder / "consumer.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [["serve", "--plain-http"], ["ui"]])
def test_item9_a_taken_port_is_named_before_anything_claims_to_serve(tmp_path, pki, command):
    if command == ["ui"]:
        command = ["ui", "--config", str(consumer_file(tmp_path, pki))]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run([*CLI, *command, "--port", str(port), "--store", f"sqlite:///{tmp_path}/s.db"],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert res.returncode == 2, res.stderr
    assert f"port {port} on 127.0.0.1 is in use" in res.stderr and "--port" in res.stderr and "PORT=" in res.stderr
    assert "serving" not in res.stderr and "staff page on" not in res.stderr and "Traceback" not in res.stderr


# -- 10. one order for the overview table and the page -------------------------------------------------------------
def test_item10_overview_table_and_page_list_medication_newest_first_by_the_date_shown(tmp_path, pki, monkeypatch):
    import asyncio

    from adapter import cli
    from adapter.consumer.overview import build_overview
    from adapter.consumer.pdl.decide import UserContext
    from adapter.ui.api import to_out
    from tests.consumer.world import ASSIGNMENTS, TOLVAN, running_world

    housing = ASSIGNMENTS[2]
    with running_world(tmp_path, pki) as world:
        user = UserContext("SE2120001231-SSK1", housing.care_unit, housing.care_giver)
        ov = asyncio.run(build_overview(world.config, open_store(f"sqlite:///{tmp_path}/log.db"), user, TOLVAN))
    page = [r.date for tab in to_out(ov).tabs if tab.contract == "GetMedicationHistory:2" for r in tab.records]
    buffer = StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buffer, width=400))
    cli._print_overview(ov, housing.name)
    table = buffer.getvalue().split("Läkemedel", 1)[1].split("Vårdplan", 1)[0]
    shown = re.findall(r"^│ (\d{4}-\d{2}-\d{2}) ", table, re.M)
    assert shown == page and shown == sorted(shown, reverse=True)
    assert shown.index("2023-06-15") < shown.index("2023-06-05")


# -- 11. an unresolved patient reference is named ------------------------------------------------------------------
def test_item11_a_patient_not_in_the_input_is_named_by_its_reference(tmp_path):
    journal = small_journal(tmp_path, condition("c-9", patient="pat-9"), condition("c-p", patient="191212121212"))
    result = CliRunner().invoke(app, ["ingest", str(journal), "--store", f"sqlite:///{tmp_path}/s.db"])
    assert result.exit_code == 2
    assert "Condition/c-9: subject.reference: Patient/pat-9 is not in the input or the store" in result.stderr
    assert "no personnummer" not in result.stderr
    assert "191212121212" not in result.stderr  # a reference that may hold a personnummer is not shown
    assert "its reference is not shown" in result.stderr


# -- 12. flags are flags in every command's help -------------------------------------------------------------------
def _commands(group, path: tuple[str, ...] = ()):
    yield path, group
    if hasattr(group, "commands"):  # typer's own (vendored) click
        for name, sub in group.commands.items():
            yield from _commands(sub, (*path, name))


def test_item12_no_command_shows_a_value_after_a_flag():
    root = typer.main.get_command(app)
    seen = 0
    for path, command in _commands(root):
        text = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
        assert "<bool>" not in text, path
        for param in command.params:
            if getattr(param, "is_flag", False):
                row = next(line for line in text.splitlines() if param.opts[0] + " " in line)
                assert not re.search(re.escape(param.opts[0]) + r"\s+<", row), row
                seen += 1
    assert seen >= 7  # --behind-proxy, --plain-http (serve, stubs), --force, --consent, --json, --quick
    quick = CliRunner().invoke(app, ["contract-test", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"--quick\s+Run the non-functional cases", quick)


# -- 14. a missing or bad certificate path names the key, never a traceback ----------------------------------------
def test_item14_a_consumer_file_with_a_bad_certificate_names_key_and_path(tmp_path, pki):
    config = consumer_file(tmp_path, pki, tmp_path / "missing.pem")
    args = ["--config", str(config), "--store", f"sqlite:///{tmp_path}/s.db"]
    for command in (["overview", "191212121212", "--as", "SE2321000016-L001", "--unit", "SE2321000016-AKUT"],
                    ["audit", "send"], ["ui"]):
        res = subprocess.run([*CLI, *command, *args], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert f"client.cert: no such file {tmp_path}/missing.pem" in res.stderr
    (tmp_path / "missing.pem").write_text("not a certificate")  # there, but not what the key says
    res = subprocess.run([*CLI, "audit", "send", *args], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"client.cert: {tmp_path}/missing.pem is not a readable PEM certificate" in res.stderr


def test_item14_an_engagement_index_certificate_that_is_not_there_is_named(tmp_path):
    env = {**os.environ, "NPO_EI_URL": "https://127.0.0.1:9/ei", "NPO_EI_CERT": f"{tmp_path}/ei.pem"}
    res = subprocess.run([*CLI, "ei-sync", "--store", f"sqlite:///{tmp_path}/s.db"], capture_output=True,
                         text=True, timeout=60, cwd=REPO, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"NPO_EI_CERT: no such file {tmp_path}/ei.pem" in res.stderr
