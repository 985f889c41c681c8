"""The bundled demo data through the whole path: generate → ingest → SOAP over HTTP → answers that are
valid against the official schemas, keep the certification rules, and filter as the TKBs say."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from lxml import etree

from adapter.demo.generate import generate
from adapter.demo.world import PNR_SYSTEM, default_world
from adapter.ingest import ingest
from adapter.rivta import rules
from adapter.rivta.contracts import CONTRACTS, DateRule
from tests.samples import call, official_schema, records, result
from tests.stores import BACKENDS, StoreUrls, require

WORLD = default_world()


@pytest.fixture(scope="module", params=BACKENDS)
def demo(request, tmp_path_factory):
    from adapter.store.engine import open_store
    from tests.conftest import serve

    require(request.param)
    folder = tmp_path_factory.mktemp("demo")
    generate(folder / "data")
    urls = StoreUrls(folder)
    engine = open_store(urls.url(request.param))
    report = ingest(engine, [folder / "data"])
    assert not report.rejected, report.rejected
    for contract in CONTRACTS:
        assert report.published[contract.key] > 0, contract.key
    with serve(engine) as srv:
        yield srv
    engine.dispose()
    urls.cleanup()


def patient_args(p) -> dict:
    return {"patient": p.number,
            "patient_type": "1.2.752.129.2.1.3.1" if p.system == PNR_SYSTEM else "1.2.752.129.2.1.3.3"}


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.key)
def test_every_patient_answer_is_schema_valid_and_keeps_the_rules(demo, contract):
    seen_ids: set[str] = set()
    for p in WORLD.patients:
        status, root, _ = call(demo.url, contract, **patient_args(p))
        assert status == 200
        response = root[-1][0]
        schema = official_schema(contract)
        assert schema.validate(response), (p.id, str(schema.error_log))
        assert result(root, contract)["resultCode"] == "OK"
        recs = records(root, contract)
        assert recs, f"{contract.name}: no demo records for {p.id}"
        assert rules.check_answer(root, contract) == []
        for rec in recs:  # where the facts live is the contract's header model
            assert rules.first_text(rec, contract, contract.paths.patient_id) == p.number  # no mixed-up patients
            seen_ids.add(rules.first_text(rec, contract, contract.paths.document_id))
    assert seen_ids


def test_demo_has_records_not_approved_for_patient_and_at_both_units(demo):
    for contract in CONTRACTS:
        approved, units = set(), set()
        for p in WORLD.patients:
            _, root, _ = call(demo.url, contract, **patient_args(p))
            approved |= set(root.xpath("//*[local-name()='approvedForPatient']/text()"))
            units |= {rules.first_text(r, contract, contract.paths.care_unit) for r in records(root, contract)}
        assert approved == {"true", "false"}, contract.name
        assert units == {u.hsa_id for u in WORLD.units}, contract.name


def _day(ts: str | None) -> str | None:
    return ts[:8] if ts else None


def _times(rec: etree._Element, contract) -> tuple[set[str], tuple[str | None, str | None]]:
    """The record's filter days and interval, read from the answer itself (not from the mapping)."""
    ns = contract.core_ns

    def all_text(path: str) -> list[str]:
        return [e.text for e in rec.iterfind(path, {"c": ns})]

    h = f"c:{contract.header_element}"
    author = all_text(f"{h}/c:accountableHealthcareProfessional/c:authorTime")
    if contract.filter_time_paths:  # the description says where its filter times are (GetCareDocumentation 3)
        days = [e.text for path in contract.filter_time_paths for e in rec.xpath(path, namespaces={"c": ns})]
    elif contract.name == "GetDiagnosis":
        days = author + all_text(f"{h}/c:legalAuthenticator/c:signatureTime") + all_text(".//c:diagnosisTime")
    elif contract.name == "GetCareDocumentation":
        days = (author + all_text(f"{h}/c:documentTime") + all_text(f"{h}/c:legalAuthenticator/c:signatureTime")
                + all_text(".//c:dissentintOpinion/c:authorTime"))
    elif contract.name == "GetVaccinationHistory":
        days = (author + all_text(f"{h}/c:documentTime") + all_text(f"{h}/c:legalAuthenticator/c:signatureTime")
                + all_text(".//c:registrationRecord/c:date"))
    elif contract.name in ("GetFunctionalStatus", "GetCarePlans"):
        days = all_text(f"{h}/c:documentTime")
    elif contract.name == "GetAlertInformation":  # validity start to obsoleteTime or validity end, the earlier
        b = f"c:{contract.body_element}"
        ends = all_text(f"{b}/c:validityTimePeriod/c:end") + all_text(f"{b}/c:obsoleteTime")
        return set(), (_day(all_text(f"{b}/c:validityTimePeriod/c:start")[0]), _day(min(ends)) if ends else None)
    elif contract.name == "GetCareContacts":  # TKB: authorTime, start and end form the interval; open ends
        period = f"c:{contract.body_element}/c:careContactTimePeriod"
        start, end = all_text(f"{period}/c:start"), all_text(f"{period}/c:end")
        formed = sorted(_day(d) or "" for d in author + start + end)
        return set(), (formed[0] if start else None, formed[-1] if end else None)
    else:
        mp = ".//c:medicationPrescription"
        start = (all_text(f"{mp}/c:prescriber/c:authorTime") or all_text(f"{mp}/c:startOfTreatment") or author)[0]
        end = all_text(f"{mp}/c:endOfTreatment")
        return set(), (_day(start), _day(end[0]) if end else None)
    return {_day(d) for d in days}, (None, None)


def _expected(recs, contract, start: str, end: str) -> set[str]:
    out = set()
    for rec in recs:
        doc = rules.first_text(rec, contract, contract.paths.document_id)
        days, (s, e) = _times(rec, contract)
        if contract.date_rule is DateRule.OVERLAP:
            if (s is None or s <= end) and (e is None or e >= start):
                out.add(doc)
        elif any(start <= d <= end for d in days):
            out.add(doc)
    return out


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.key)
def test_date_filters_random_subintervals_and_boundaries(demo, contract):
    rng = random.Random(contract.name)
    for p in WORLD.patients[:3]:
        _, root, _ = call(demo.url, contract, **patient_args(p))
        recs = records(root, contract)
        periods = []
        for rec in recs:  # each record's own days as exact, inclusive boundaries
            days, (s, e) = _times(rec, contract)
            for d in sorted(days) + [x for x in (s, e) if x]:
                periods.append((d, d))
        for _ in range(8):
            a = date(2015, 1, 1) + timedelta(days=rng.randrange(4000))
            b = a + timedelta(days=rng.randrange(1500))
            periods.append((a.strftime("%Y%m%d"), b.strftime("%Y%m%d")))
        periods.append(("19000101", "19101231"))  # before all data
        for start, end in periods:
            _, got, _ = call(demo.url, contract, period=(start, end), **patient_args(p))
            ids = {rules.first_text(r, contract, contract.paths.document_id) for r in records(got, contract)}
            assert ids == _expected(recs, contract, start, end), (p.id, start, end)


def test_the_demo_generator_writes_the_same_files_every_time(tmp_path):
    first, second = generate(tmp_path / "a"), generate(tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def _gmh_records(demo, **kw):
    from adapter.rivta.contracts import GET_MEDICATION_HISTORY as GMH

    p = WORLD.patients[0]
    status, root, _ = call(demo.url, GMH, **patient_args(p), **kw)
    assert status == 200 and result(root, GMH)["resultCode"] == "OK"
    assert official_schema(GMH).validate(root[-1][0])
    return records(root, GMH)


def _gmh(rec, path: str) -> list[str]:
    from adapter.rivta.contracts import GET_MEDICATION_HISTORY as GMH

    return [e.text for e in rec.iterfind(path, {"c": GMH.core_ns})]


def test_medication_filters_care_giver_chain_status_and_open_periods(demo):
    everything = _gmh_records(demo)
    assert len(everything) > 3
    giver = WORLD.care_giver.hsa_id
    assert len(_gmh_records(demo, care_givers=[giver])) == len(everything)
    assert _gmh_records(demo, care_givers=["SE2321000016-NONE"]) == []

    active = _gmh_records(demo, prescription_status="Active")
    inactive = _gmh_records(demo, prescription_status="Inactive")
    assert active and inactive and len(active) + len(inactive) == len(everything)
    assert {s for r in active for s in _gmh(r, ".//c:medicationPrescription/c:prescriptionStatus")} == {"Active"}

    chained = [r for r in everything if _gmh(r, ".//c:medicationPrescription/c:prescriptionChainId/c:root")]
    assert chained
    root = _gmh(chained[0], ".//c:medicationPrescription/c:prescriptionChainId/c:root")[0]
    ext = (_gmh(chained[0], ".//c:medicationPrescription/c:prescriptionChainId/c:extension") or [None])[0]
    chain = _gmh_records(demo, prescription_chain=(root, ext))
    assert len(chain) >= 3  # the whole chain, active and inactive links
    statuses = [_gmh(r, ".//c:medicationPrescription/c:prescriptionStatus")[0] for r in chain]
    assert statuses.count("Active") == 1

    # open-ended request periods: only a start, only an end
    assert len(_gmh_records(demo, period=("19000101", None))) == len(everything)
    assert _gmh_records(demo, period=(None, "19000101")) == []
    assert len(_gmh_records(demo, period=(None, "20991231"))) == len(everything)
