"""The TKB request rules, over real SOAP on loopback (GetDiagnosis as the worked contract)."""

from __future__ import annotations

import pytest

from adapter.ingest import ingest
from adapter.rivta import rules
from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from tests.samples import (
    OTHER_SOURCE,
    PNR,
    SNR,
    SOURCE,
    WORLD,
    bundle,
    call,
    condition,
    document_ids,
    official_schema,
    records,
    result,
    support_bundle,
)

HOME, HOUSING = WORLD.units


@pytest.fixture
def srv(store, server_for, tmp_path):
    data = bundle(
        condition("c-author", identifier="d-author", recorded="2024-03-10T08:00:00+01:00"),
        condition("c-onset", identifier="d-onset", recorded="2020-01-01T08:00:00+01:00", onset="2024-06-15"),
        condition("c-signed", identifier="d-signed", recorded="2019-05-01T08:00:00+02:00",
                  asserted="2024-09-30T23:30:00+02:00"),
        condition("c-housing", identifier="d-housing", staff=1, recorded="2023-01-01T12:00:00+01:00",
                  encounter="kontakt-7"),
        condition("c-other-sys", identifier="d-other", source=OTHER_SOURCE),
        condition("c-snr", identifier="d-snr", patient="pat-6"),
    )
    import orjson

    (tmp_path / "support.json").write_bytes(orjson.dumps(support_bundle()))
    (tmp_path / "data.json").write_bytes(orjson.dumps(data))
    report = ingest(store, [tmp_path / "support.json", tmp_path / "data.json"])
    assert not report.rejected, report.rejected
    return server_for(store)


def ok_ids(srv, **kw) -> set[str]:
    status, root, _ = call(srv.url, GD, **kw)
    assert status == 200
    assert official_schema(GD).validate(root[-1][0]), official_schema(GD).error_log
    assert result(root, GD)["resultCode"] == "OK"
    assert rules.check_answer(root, GD) == []
    return set(document_ids(root, GD))


def test_all_records_of_the_logical_address_source_system(srv):
    assert ok_ids(srv) == {"d-author", "d-onset", "d-signed", "d-housing"}


def test_only_records_of_the_source_system_named_by_logical_address(srv):
    assert ok_ids(srv, logical_address=OTHER_SOURCE) == {"d-other"}
    assert ok_ids(srv, logical_address="SE0000000000-NONE") == set()


def test_samordningsnummer(srv):
    assert ok_ids(srv, patient=SNR, patient_type="1.2.752.129.2.1.3.3") == {"d-snr"}
    # the same number under the personnummer type is another identity
    assert ok_ids(srv, patient=SNR) == set()


def test_unknown_patient_gives_empty_ok_answer(srv):
    assert ok_ids(srv, patient="191111111111") == set()


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (("20240310", "20240310"), {"d-author"}),  # authorTime, inclusive on both ends
        (("20240615", "20240615"), {"d-onset"}),  # diagnosisTime
        (("20240930", "20240930"), {"d-signed"}),  # signatureTime (23:30 local, not UTC's next day)
        (("20240311", "20240614"), set()),
        (("20190101", "20241231"), {"d-author", "d-onset", "d-signed", "d-housing"}),
        (("19000101", "19991231"), set()),  # before all data
    ],
)
def test_date_period_any_of_author_signature_diagnosis_time(srv, period, expected):
    assert ok_ids(srv, period=period) == expected


def test_care_unit_filter(srv):
    assert ok_ids(srv, care_units=[HOUSING.hsa_id]) == {"d-housing"}
    assert ok_ids(srv, care_units=[HOUSING.hsa_id.lower()]) == {"d-housing"}
    assert ok_ids(srv, care_units=[HOME.hsa_id, HOUSING.hsa_id]) == {"d-author", "d-onset", "d-signed", "d-housing"}


def test_care_contact_filter_and_unknown_care_contact(srv):
    assert ok_ids(srv, source_system=SOURCE, care_contacts=["kontakt-7"]) == {"d-housing"}
    assert ok_ids(srv, source_system=SOURCE, care_contacts=["no-such-contact"]) == set()


def test_source_system_equal_to_logical_address_is_accepted(srv):
    assert ok_ids(srv, source_system=SOURCE) == {"d-author", "d-onset", "d-signed", "d-housing"}


def refusal(srv, **kw) -> str:
    status, root, raw = call(srv.url, GD, **kw)
    assert status == 200
    assert official_schema(GD).validate(root[-1][0])
    assert records(root, GD) == []
    res = result(root, GD)
    assert res["resultCode"] == "ERROR"
    assert res["errorCode"] == "INVALID_REQUEST"
    assert len(res["logId"]) == 36
    assert PNR.encode() not in raw
    return res["message"]


def test_source_system_not_equal_to_logical_address_is_invalid_request(srv):
    assert "LogicalAddress" in refusal(srv, source_system=OTHER_SOURCE)


def test_care_contact_without_source_system_is_invalid_request(srv):
    assert "careContactId" in refusal(srv, care_contacts=["kontakt-7"])


def test_reservnummer_requires_source_system(srv):
    assert "reservnummer" in refusal(srv, patient="99000000001X", patient_type="1.2.752.97.3.1.3")
    assert ok_ids(srv, patient="99000000001X", patient_type="1.2.752.97.3.1.3", source_system=SOURCE) == set()


def test_malformed_personnummer_and_reversed_or_impossible_period(srv):
    refusal(srv, patient="19121212-1212")
    refusal(srv, period=("20240102", "20240101"))
    refusal(srv, period=("20240231", "20240301"))
