"""The two declaration formats: Inera's data.xml (as testers fill it in) and the project's TOML."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from adapter.mapping.codes import PERSONNUMMER, SAMORDNINGSNUMMER
from adapter.rivta.contracts import CONTRACTS
from adapter.suite import declaration, runner
from adapter.suite.cli import contract_test
from adapter.suite.declaration import DeclarationError, Patient
from adapter.suite.results import Status
from tests.conftest import RunningServer, free_port
from tests.samples import REFERENCE
from tests.suite.conftest import DEMO_DECLARATION, producer_app

SUITES = REFERENCE / "test-suites"


@pytest.mark.parametrize("name", ["GetDiagnosis", "GetFunctionalStatus", "GetCareDocumentation",
                                  "GetMedicationHistory"])
def test_the_official_data_xml_templates_are_read(name):
    (decl,) = declaration.load([SUITES / name / "data.xml"]).contracts.values()
    assert decl.contract.name == name
    assert decl.patient == Patient("195709263080", PERSONNUMMER)
    assert decl.coordination_patient == Patient("196812732391", SAMORDNINGSNUMMER)
    assert decl.reserve_patient == Patient("19570926308A", "ABC-123")
    assert decl.unknown_patient == Patient("195709263080", PERSONNUMMER)  # the template's value: to be changed
    assert decl.load_patients == (Patient("196001209136"), Patient("195709263080"))
    assert decl.url and decl.url.startswith("http://localhost:8088/")
    assert (decl.hidden_consumer, decl.filter_string) == ("444", "Bortfiltrerad VC")
    assert decl.other_consumer == "444" and decl.intervals == 30
    assert decl.test_string and decl.test_string.endswith("åäö<>><&")


def test_case_specific_values_of_the_templates():
    load = declaration.load
    gd = load([SUITES / "GetDiagnosis" / "data.xml"]).contracts["GetDiagnosis:2"]
    assert gd.empty_period == ("20100101", "20100201") and gd.manual_period == ("20160901", "20160903")
    assert (gd.care_unit, gd.care_contact, gd.unknown_care_contact) == ("1122334455", "566710", "1122334455")
    assert (gd.logical_address, gd.system, gd.consumer) == ("112233", "112233", "112233")
    gmh = load([SUITES / "GetMedicationHistory" / "data.xml"]).contracts["GetMedicationHistory:2"]
    assert gmh.chain == ("1.2.752.129.2.1.2.1", "1111222233334444") and gmh.care_giver == "566810"
    # the official GetCareDocumentation suite is the 3.0 one (its <id>): it declares 3.0
    gcd = load([SUITES / "GetCareDocumentation" / "data.xml"]).contracts["GetCareDocumentation:3"]
    assert (gcd.logical_address, gcd.system, gcd.care_unit) == ("23456", "34567", "123465")
    assert gcd.part_wait_seconds == 5.0  # 5.18 sleepingSeconds


def test_the_demo_toml_covers_all_five_contracts_with_per_contract_values(demo_declaration):
    assert list(demo_declaration.contracts) == [c.key for c in CONTRACTS]  # every_contract = true
    gmh = demo_declaration.contracts["GetMedicationHistory:2"]
    assert gmh.care_giver == "SE2120001231-VG01" and gmh.test_string.startswith("Johannesörtsextrakt <300")
    assert "1.1.3" in gmh.skip and "5.19" in gmh.skip  # top-level skips add to the contract's own
    assert demo_declaration.contracts["GetDiagnosis:2"].care_giver is None
    assert demo_declaration.contracts["GetCarePlans:2"].case_patients == {"7.1": Patient("193508199282")}
    assert len(demo_declaration.contracts["GetDiagnosis:2"].known_patients) == 6
    assert demo_declaration.load.basic_seconds == 180 and demo_declaration.load.quick().basic_seconds == 2


@pytest.mark.parametrize("text, message", [
    ('personnummer = "191212121212"\n[contracts.GetDiagnosis]\n', "logical_address and personnummer"),
    ('logical_address = "X"\npersonnummer = "1"\ncolour = "red"\n[contracts.GetDiagnosis]\n', "colour"),
    ('logical_address = "X"\npersonnummer = "1"\n[contracts.GetAnything]\n', "unknown contract"),
    ('logical_address = "X"\npersonnummer = "1"\n', "no [contracts.<Name>] table and no every_contract"),
    ('logical_address = "X"\npersonnummer = "1"\nempty_period = ["20100201", "20100101"]\n'
     '[contracts.GetDiagnosis]\n', "empty_period"),
    ('logical_address = "X"\npersonnummer = "1"\nreservnummer = "R1"\n[contracts.GetDiagnosis]\n',
     "reservnummer_type"),
    ('logical_address = "X"\npersonnummer = "1"\n[load]\nbasic_seconds = -1\n[contracts.GetDiagnosis]\n',
     "basic_seconds"),
])
def test_unusable_toml_is_refused_naming_the_field(tmp_path, text, message):
    path = tmp_path / "d.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DeclarationError, match=message.replace("[", r"\[").replace(".", r"\.")):
        declaration.load([path])


def test_a_data_xml_that_is_not_a_test_suite_is_refused(tmp_path):
    path = tmp_path / "data.xml"
    path.write_text("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e 'x'>]><testsuite/>", encoding="utf-8")
    with pytest.raises(DeclarationError, match="document type"):
        declaration.load([path])


DEMO_DATA_XML = """<?xml version="1.0" encoding="utf-8"?>
<testsuite>
  <id>GetDiagnosis 2.0</id>
  <contractName>GetDiagnosis</contractName>
  <globaldata>
    <webServiceUrl>{url}/clinicalprocess/healthcond/description/GetDiagnosis/2/rivtabp21</webServiceUrl>
    <logicalAddress>SE2120001231-SYS1</logicalAddress>
    <patientId>191212121212</patientId>
    <patientIdType>1.2.752.129.2.1.3.1</patientIdType>
    <careUnitHSAId>SE2120001231-SB01</careUnitHSAId>
    <sourceSystemHSAId>SE2120001231-SYS1</sourceSystemHSAId>
    <logTestData>false</logTestData>
  </globaldata>
  <testcase id="1.1.1 Personnummer"><data></data></testcase>
  <testcase id="1.1.2 Samordningsnummer"><data>
    <patientId>197010632391</patientId><patientIdType>1.2.752.129.2.1.3.3</patientIdType></data></testcase>
  <testcase id="1.1.4 Lokalt reservnummer"><data><!-- <patientId></patientId> --></data></testcase>
  <testcase id="1.2.2 timePeriod intervall"><data><numberOfIntervals>5</numberOfIntervals></data></testcase>
  <testcase id="1.2.3 timePeriod tom respons"><data>
    <timePeriodStart>20100101</timePeriodStart><timePeriodEnd>20100201</timePeriodEnd></data></testcase>
  <testcase id="1.8 NonExisting Patient"><data><patientId>190001012389</patientId></data></testcase>
  <testcase id="2.2 Encoding_SpecialCharacters"><data><testString><![CDATA[fallrisk <&> yrsel]]></testString>
    </data></testcase>
  <testcase id="4.2 ApprovedForPatient_false"><data><patientId>194004019818</patientId></data></testcase>
  <testcase id="6.1 Loadtest"><data><patientId1>191212121212</patientId1><patientId2>197010632391</patientId2>
    </data></testcase>
  <testcase id="7.1 CareUnit_Blacklisted"><data>
    <httpHeaderHsaId2>SE2321000016-7HID</httpHeaderHsaId2><filterString>Björkgården</filterString></data></testcase>
  <testcase id="7.3 Consumer_Independent"><data><httpHeaderHsaId2>SE2321000016-9KHR</httpHeaderHsaId2></data>
  </testcase>
</testsuite>
"""


def test_a_data_xml_filled_in_for_our_producer_runs_green(demo_engine, tmp_path):
    with RunningServer(producer_app(demo_engine), free_port()) as srv:
        path = tmp_path / "data.xml"
        path.write_text(DEMO_DATA_XML.format(url=srv.url), encoding="utf-8")
        decl = declaration.load([path])
        gd = decl.contracts["GetDiagnosis:2"]
        assert gd.case_patients == {"4.2": Patient("194004019818")} and gd.intervals == 5
        result = runner.run(decl, "GetDiagnosis", runner.RunOptions(quick=True, load_seconds=0.5))
    by_number = {c.number: c for c in result.cases}
    assert not result.failed, [(c.number, c.reasons) for c in result.failed]
    assert by_number["1.1.4"].status is Status.SKIPPED and by_number["7.2"].status is Status.SKIPPED
    assert by_number["1.3"].status is by_number["7.1"].status is by_number["6.1.1"].status is Status.PASSED
    assert result.endpoints["GetDiagnosis:2"].startswith(srv.url)


def test_unusable_command_lines_exit_with_2(tmp_path):
    app = typer.Typer()
    app.command("contract-test")(contract_test)
    app.callback()(lambda: None)
    no_address = CliRunner().invoke(app, ["contract-test", "--data", str(DEMO_DECLARATION)])
    assert no_address.exit_code == 2 and "give --endpoint" in no_address.output
    uncovered = tmp_path / "d.toml"
    uncovered.write_text('logical_address = "X"\npersonnummer = "1"\n[contracts.GetDiagnosis]\n', encoding="utf-8")
    wrong = CliRunner().invoke(app, ["contract-test", "--data", str(uncovered), "--contract", "GetCarePlans",
                                     "--endpoint", "http://127.0.0.1:9"])
    assert wrong.exit_code == 2 and "does not cover GetCarePlans" in wrong.output
    assert runner.service_url(declaration.load([DEMO_DECLARATION]).contracts["GetDiagnosis:2"],
                              "https://vp.example/vp/") == \
        "https://vp.example/vp/clinicalprocess/healthcond/description/GetDiagnosis/2/rivtabp21"
