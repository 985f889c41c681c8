"""The TOML files (consumer, authorisations, stand-in seeds, suite declarations): a bad value or a missing key is one
error naming the file, the key path and the problem, and the commands that read them exit 2 with it, never a
traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from adapter.cli import app
from adapter.consumer.overview import ConsumerConfigError, load_config
from adapter.gateway import authorisation
from adapter.stubs.seed import SeedError, load_seed
from adapter.suite import declaration
from adapter.suite.cli import contract_test

REPO = Path(__file__).resolve().parents[1]
CONSUMER = (REPO / "config" / "consumer.dev.toml").read_text(encoding="utf-8")
AUTHORISATIONS = (REPO / "config" / "authorisations.dev.toml").read_text(encoding="utf-8")
SEED = (REPO / "adapter" / "stubs" / "seed.dev.toml").read_text(encoding="utf-8")
DECLARATION = (REPO / "config" / "contract-test.demo.toml").read_text(encoding="utf-8")


def written(tmp_path: Path, text: str, name: str = "file.toml") -> Path:
    folder = tmp_path / "config"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def changed(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def flat(output: str) -> str:
    return " ".join(output.split())  # rich wraps long lines


def refused(result, *parts: str) -> None:
    """Exit 2, the parts in the message, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for part in parts:
        assert part in flat(result.output), (part, result.output)


# -- the consumer -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new", "key", "problem"), [
    ("timeout = 27 ", 'timeout = "soon" ', "client.timeout", "must be a number"),
    ("deadline = 20 ", "deadline = -1 ", "client.deadline", "must be greater than 0"),
    ('url = "https://127.0.0.1:8443"', 'url = "127.0.0.1:8443"', "source[0].url", "must be an http(s) URL"),
    ('care_unit = "SE2321000016-GER1"', "care_unit = 7", "assignment[1].care_unit", "must be a string"),
    ("min_reason_length = 15", 'min_reason_length = "many"', "emergency.min_reason_length",
     "must be a whole number"),
    ("idle_minutes = 30", "idle_minuts = 30", "session.idle_minuts", "unknown key"),
    ('key = "certs/dev/client-consumer2.key"\n', "", "client.key", "is required"),
    ('log_url = "https://127.0.0.1:8603"\n', "", "services.log_url", "is required"),
    ('name = "Demoanvändare"\n', "", "demo_user.name", "is required"),
])
def test_a_bad_consumer_file_names_file_key_and_problem(tmp_path, old, new, key, problem):
    path = written(tmp_path, changed(CONSUMER, old, new))
    with pytest.raises(ConsumerConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert f"{key}: {problem}" in str(caught.value)


def test_staff_login_table_is_checked_too(tmp_path):
    text = CONSUMER + '\n[staff_login]\nissuer = "login.example"\nclient_id = "npo"\n'
    with pytest.raises(ConsumerConfigError) as caught:
        load_config(written(tmp_path, text))
    message = str(caught.value)
    assert "staff_login.issuer: must be an http(s) URL" in message and "staff_login.public_url: is required" in message
    secret = (CONSUMER + '\n[staff_login]\nissuer = "https://login.example"\nclient_id = "npo"\n'
              'public_url = "https://npo.example"\nclient_secret_file = "no/such/secret"\n')
    with pytest.raises(ConsumerConfigError, match=re.escape("staff_login.client_secret_file: cannot read")):
        load_config(written(tmp_path, secret))


def test_the_development_consumer_file_reads_as_before():
    config = load_config(REPO / "config" / "consumer.dev.toml")
    assert config.fetch.per_source_timeout == 27.0 and config.fetch.deadline == 20.0 and config.service_timeout == 5.0
    assert [a.care_unit for a in config.assignments] == ["SE2321000016-AKUT", "SE2321000016-GER1"]
    assert config.session.idle_seconds == 1800 and config.emergency.duration_seconds == 4 * 3600
    assert config.demo_user is not None and config.staff_login is None
    assert config.client_cert == REPO / "certs" / "dev" / "client-consumer2.pem"


def test_a_missing_certificate_is_named_with_its_key_and_path(tmp_path):
    path = written(tmp_path, changed(CONSUMER, 'cert = "certs/dev/client-consumer2.pem"',
                                     'cert = "certs/elsewhere/nobody.pem"'))
    load_config(path)  # read without looking at the files
    with pytest.raises(ConsumerConfigError) as caught:
        load_config(path, check_files=True)
    assert f"{path}: client.cert: no such file {tmp_path / 'certs' / 'elsewhere' / 'nobody.pem'}" in str(caught.value)


def overview(config: Path, tmp_path: Path):
    return CliRunner().invoke(app, ["overview", "191212121212", "--as", "SE2321000016-L001", "--unit",
                                    "SE2321000016-AKUT", "--config", str(config), "--store",
                                    f"sqlite:///{tmp_path}/cli.db"])


def test_overview_with_a_bad_consumer_file_exits_2_naming_file_and_key(tmp_path):
    path = written(tmp_path, changed(CONSUMER, "timeout = 27 ", 'timeout = "soon" '))
    refused(overview(path, tmp_path), str(path), "client.timeout: must be a number")
    path = written(tmp_path, changed(CONSUMER, '[[source]]\nname = "Exempelby kommun"\n', '[[source]]\n'), "b.toml")
    refused(overview(path, tmp_path), str(path), "source[0].name: is required")
    refused(overview(tmp_path / "none.toml", tmp_path), str(tmp_path / "none.toml"))


def test_overview_with_a_missing_key_file_exits_2_naming_key_and_path(tmp_path, pki):
    platform = pki.client("platform")
    text = changed(changed(changed(CONSUMER, 'cert = "certs/dev/client-consumer2.pem"', f'cert = "{platform.cert}"'),
                           'key = "certs/dev/client-consumer2.key"', 'key = "/nowhere/client.key"'),
                   'ca = "certs/dev/ca-bundle.pem"', f'ca = "{pki.ca_bundle}"')
    path = written(tmp_path, text)
    refused(overview(path, tmp_path), str(path), "client.key: no such file /nowhere/client.key")


def test_ui_and_audit_send_refuse_a_bad_consumer_file(tmp_path):
    path = written(tmp_path, changed(CONSUMER, "hours = 4 ", "hours = 0 "))
    ui = CliRunner().invoke(app, ["ui", "--config", str(path), "--store", f"sqlite:///{tmp_path}/ui.db"])
    refused(ui, str(path), "emergency.hours: must be greater than 0")
    send = CliRunner().invoke(app, ["audit", "send", "--config", str(path), "--store", f"sqlite:///{tmp_path}/a.db"])
    refused(send, str(path), "emergency.hours: must be greater than 0")


# -- the authorisations -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new", "key", "problem"), [
    ('consumer = "SE2321000016-9KHR"', 'consumer = "se2321000016-9khr"', "allow[1].consumer", "canonical form"),
    ('contracts = ["*"]', 'contracts = ["GetEverything"]', "allow[0].contracts[0]", "'GetEverything' is not a served"),
    ('contracts = ["*"]', 'contracts = ["GetDiagnosis"]', "allow[0].contracts[0]",
     "write urn:riv:clinicalprocess:healthcond:description:GetDiagnosisResponder:2"),
    ('care_units = ["SE2120001231-SB01"]', "care_units = []", "hide[0].care_units", "must not be empty"),
    ('source_systems = ["SE2120001231-SYS1"]', 'source_systems = ["*"]', "writer[0]", "no \"*\""),
    ('logical_addresses = ["SE2120001231-SYS1"]\n', "", "allow[1].logical_addresses", "is required"),
    ('hsa_id = "SE2120001231-JS01"\n', "", "writer[0].hsa_id", "is required"),
    ("[[hide]]", "[[hidden]]", "hidden", "unknown key"),
])
def test_a_bad_authorisations_file_names_file_key_and_problem(tmp_path, old, new, key, problem):
    path = written(tmp_path, changed(AUTHORISATIONS, old, new))
    with pytest.raises(authorisation.AuthorisationError) as caught:
        authorisation.load(path)
    assert str(caught.value).startswith(f"{path}: ") and f"{key}: " in str(caught.value)
    assert problem in str(caught.value)


def test_serve_with_a_bad_authorisations_file_exits_2(tmp_path):
    path = written(tmp_path, changed(AUTHORISATIONS, 'contracts = ["*"]', 'contracts = "*"'))
    result = CliRunner().invoke(app, ["serve", "--plain-http", "--authorisations", str(path), "--store",
                                      f"sqlite:///{tmp_path}/s.db"])
    refused(result, str(path), "allow[0].contracts: must be a list")


# -- the stand-ins' seed ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "key", "problem"), [
    ('[[consent]]\npatient = "1"\ncare_provider = "a"\ncare_unit = "b"\ncolour = "red"', "consent[0].colour",
     "unknown key"),
    ('[[consent]]\npatient = "1"\ncare_provider = "a"', "consent[0].care_unit", "is required"),
    ('[[consent]]\npatient = "1"\ncare_provider = "a"\ncare_unit = "b"\nvalid_to = "tomorrow"', "consent[0].valid_to",
     "must be a TOML date or date-time"),
    ('[[block]]\npatient = "1"\ntype = "Outer"\ncare_provider = "a"\n[[block.revoke]]\ncare_unit = "b"',
     "block[0].revoke[0].valid_to", "is required"),
])
def test_a_bad_seed_file_names_file_key_and_problem(tmp_path, text, key, problem):
    path = written(tmp_path, text)
    with pytest.raises(SeedError, match=re.escape(f"{path}: {key}: {problem}")):
        load_seed(path)


def test_stubs_with_a_bad_seed_exits_2(tmp_path):
    path = written(tmp_path, changed(SEED, 'type = "Outer"', 'type = "Outside"'))
    result = CliRunner().invoke(app, ["stubs", "--plain-http", "--seed", str(path)])
    refused(result, str(path), "block[0].type: must be 'Inner' or 'Outer'")


# -- the suite's declaration --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new", "key", "problem"), [
    ("intervals = 30 ", "intervals = 0 ", "intervals", "must be at least 1"),
    ("basic_threads = 10", 'basic_threads = "ten"', "load.basic_threads", "must be a whole number"),
    ('care_giver = "SE2120001231-VG01"', "care_giver = 1", "contracts.GetMedicationHistory.care_giver",
     "must be a string"),
    ("[contracts.GetCarePlans]", "[contracts.GetCarePlan]", "contracts.GetCarePlan", "unknown contract"),
    ('personnummer = "191212121212"', "", "contracts.GetDiagnosis", "logical_address and personnummer are required"),
])
def test_a_bad_declaration_names_file_key_and_problem(tmp_path, old, new, key, problem):
    path = written(tmp_path, changed(DECLARATION, old, new))
    with pytest.raises(declaration.DeclarationError, match=re.escape(f"{path}: {key}: {problem}")):
        declaration.load([path])


def test_contract_test_with_a_bad_declaration_exits_2(tmp_path):
    command = typer.Typer()
    command.command("contract-test")(contract_test)
    command.callback()(lambda: None)
    path = written(tmp_path, changed(DECLARATION, 'empty_period = ["20100101", "20101231"]', 'empty_period = "2010"'))
    result = CliRunner().invoke(command, ["contract-test", "--data", str(path), "--endpoint", "http://127.0.0.1:1"])
    refused(result, str(path), "empty_period: must be")


def test_stubs_say_once_where_each_stand_in_listens_and_stop_on_sigterm(tmp_path):
    """uvicorn's start and stop lines came four times over (four servers in one process), after the stand-ins' own."""
    import signal
    import subprocess

    from tests.conftest import free_port
    from tests.gateway.conftest import CLI, wait_for_port

    ports = {name: free_port() for name in ("consent", "blocking", "log", "ei")}
    proc = subprocess.Popen([*CLI, "stubs", "--plain-http", *(a for name, port in ports.items()
                                                               for a in (f"--{name}-port", str(port)))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        for port in ports.values():
            wait_for_port(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    for name, port in ports.items():
        assert err.count(f"{name} stand-in on http://127.0.0.1:{port}") == 1
    assert "Uvicorn running" not in err and "Started server process" not in err
