"""GetCareDocumentation 3.0 partial answers (TKB hasMore) over real SOAP on loopback, on SQLite and PostgreSQL:
at most N records, the newest first, a hasMore naming the called logical address and a reference that the
next request continues from; a forged, foreign or reused-with-other-parameters reference is refused with
result ERROR (INVALID_REQUEST in resultText), never a fault or a crash."""

from __future__ import annotations

import base64

import orjson
import pytest
from lxml import etree

from adapter.ingest import ingest
from adapter.rivta import rules
from adapter.rivta.contracts import GET_CARE_DOCUMENTATION as GCD21
from adapter.rivta.contracts import GET_CARE_DOCUMENTATION_3 as GCD3
from adapter.rivta.contracts import SOAP_NS
from tests.mapping.test_care_documentation import docref
from tests.samples import OTHER_SOURCE, PNR, SOURCE, WORLD, bundle, call, official_schema, support_bundle

HOME, HOUSING = WORLD.units
R, C = GCD3.responder_ns, GCD3.core_ns
# seven notes, 2024-01-0N (N = 1..7); note-3 is written by the housing unit's staff member
NOTES = [f"note-{n}" for n in range(1, 8)]


def _note(n: int) -> dict:
    extra = {"author": [WORLD.staff[2].role_ref]} if n == 3 else {}
    return docref(id=f"note-{n}", date=f"2024-01-0{n}T10:00:00+01:00", **extra)


@pytest.fixture
def srv(store, server_for, tmp_path):
    (tmp_path / "support.json").write_bytes(orjson.dumps(support_bundle()))
    (tmp_path / "data.json").write_bytes(orjson.dumps(bundle(*(_note(n) for n in range(1, 8)))))
    report = ingest(store, [tmp_path / "support.json", tmp_path / "data.json"])
    assert not report.rejected, report.rejected
    return server_for(store, max_records_per_answer=3)


def answer(root: etree._Element) -> etree._Element:
    resp = root.find(f"{{{SOAP_NS}}}Body/{{{R}}}GetCareDocumentationResponse")
    assert resp is not None, etree.tostring(root)
    return resp


def page(srv, **kw) -> tuple[list[str], tuple[str, str] | None, etree._Element]:
    status, root, _ = call(srv.url, GCD3, **kw)
    assert status == 200
    resp = answer(root)
    assert official_schema(GCD3).validate(resp), official_schema(GCD3).error_log
    assert resp.findtext(f"{{{R}}}result/{{{C}}}resultCode") == "OK", etree.tostring(resp)
    assert rules.check_answer(root, GCD3) == []
    ids = [r.findtext(f"{{{C}}}header/{{{C}}}record/{{{C}}}id/{{{C}}}root")
           for r in resp.findall(f"{{{R}}}careDocumentation")]
    more = resp.find(f"{{{R}}}hasMore")
    has_more = (more.findtext(f"{{{R}}}logicalAddress"), more.findtext(f"{{{R}}}reference")) if more is not None \
        else None
    return ids, has_more, resp


def error_text(srv, **kw) -> str:
    status, root, _ = call(srv.url, GCD3, **kw)
    assert status == 200, "a logical error is a result, not a SOAP fault"
    resp = answer(root)
    assert official_schema(GCD3).validate(resp), official_schema(GCD3).error_log
    assert resp.findtext(f"{{{R}}}result/{{{C}}}resultCode") == "ERROR"
    assert resp.find(f"{{{R}}}careDocumentation") is None and resp.find(f"{{{R}}}hasMore") is None
    text = resp.findtext(f"{{{R}}}result/{{{C}}}resultText")
    assert PNR not in text
    return text


def test_pages_newest_first_until_done(srv):
    first, more, _ = page(srv)
    assert first == ["note-7", "note-6", "note-5"]
    assert more is not None and more[0] == SOURCE  # TKB: the producer that has more = the logical address called
    second, more2, _ = page(srv, logical_address=more[0], has_more_reference=more[1])
    assert second == ["note-4", "note-3", "note-2"]
    assert more2 is not None and more2[1] != more[1]  # a new, unique reference for the next part
    third, more3, _ = page(srv, logical_address=more2[0], has_more_reference=more2[1])
    assert third == ["note-1"] and more3 is None
    # a reference stays usable (TKB: at least an hour): the same part again
    assert page(srv, has_more_reference=more[1])[0] == second


def test_whole_answer_fits_no_has_more(srv):
    ids, more, _ = page(srv, period=("20240101", "20240103"))
    assert ids == ["note-3", "note-2", "note-1"] and more is None


def test_filters_keep_applying_across_pages(srv):
    ids, more, _ = page(srv, care_units=[HOME.hsa_id])
    assert ids == ["note-7", "note-6", "note-5"]
    rest, more2, _ = page(srv, care_units=[HOME.hsa_id], has_more_reference=more[1])
    assert rest == ["note-4", "note-2", "note-1"] and more2 is None
    assert page(srv, care_units=[HOUSING.hsa_id])[0] == ["note-3"]
    assert page(srv, care_givers=[WORLD.care_giver.hsa_id])[1] is not None
    assert page(srv, care_givers=["SE0000000000-NONE"])[0] == []


def test_reference_holds_nothing_readable(srv):
    _, more, _ = page(srv)
    reference = more[1]
    raw = base64.urlsafe_b64decode(reference + "=" * (-len(reference) % 4))
    for secret in (PNR, "note-", SOURCE, "2024"):
        assert secret not in reference and secret.encode() not in raw


@pytest.mark.parametrize("reference", [
    "not-a-reference", "", "x" * 5000, "gAAAAABl" + "A" * 100, "é", "<x/>",
])
def test_forged_reference_is_refused(srv, reference):
    text = error_text(srv, has_more_reference=reference)
    assert "INVALID_REQUEST" in text and "hasMoreReference" in text


def test_reference_only_with_the_parameters_it_was_given_for(srv):
    _, more, _ = page(srv)
    for kw in ({"period": ("20240101", "20240107")}, {"care_units": [HOME.hsa_id]},
               {"patient": "191111111111"}, {"logical_address": OTHER_SOURCE}):
        assert "INVALID_REQUEST" in error_text(srv, has_more_reference=more[1], **kw)


def test_reference_from_another_producer_key_is_refused(srv, store, server_for):
    other = server_for(store, max_records_per_answer=3)  # another process: another random key
    _, more, _ = page(srv)
    assert "INVALID_REQUEST" in error_text(other, has_more_reference=more[1])


def test_request_rules_in_iitype_form(srv):
    assert "INVALID_REQUEST" in error_text(srv, source_system=OTHER_SOURCE)
    assert page(srv, source_system=SOURCE)[1] is not None
    text = error_text(srv, patient="19121212-1212")
    assert "patientId.extension" in text


def test_21_answers_whole(srv):
    status, root, _ = call(srv.url, GCD21)
    assert status == 200
    recs = root.findall(f".//{{{GCD21.responder_ns}}}careDocumentation")
    assert len(recs) == 7  # 2.1 has no partial answers
