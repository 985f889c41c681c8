"""Who may write, over the real mTLS gateway: the caller's function certificate names the writing system, the
authorisations file says for which source systems it writes. Each refusal is an attack that must fail."""

from __future__ import annotations

import httpx
import pytest

from adapter.config import Settings
from adapter.gateway import authorisation
from adapter.gateway.identity import CertSource
from adapter.gateway.tls import TlsContexts
from adapter.producer.app import Access, create_app
from adapter.store.engine import open_store
from tests.fhir.helpers import FHIR_JSON, condition, support_resources, transaction
from tests.gateway.conftest import TlsServer, client_context, tls_files
from tests.samples import OTHER_SOURCE, SOURCE

WRITERS = """
[[allow]]
consumer = "SE165565594230-1000"
contracts = ["*"]
logical_addresses = ["*"]

[[writer]]
hsa_id = "SE2120001231-JS01"
source_systems = ["SE2120001231-SYS1"]
care_givers = ["SE2120001231-VG01"]

[[writer]]
hsa_id = "SE2120001231-JS02"
source_systems = ["SE2120001231-SYS2"]
care_givers = ["SE2120001231-VG01"]
"""


@pytest.fixture
def gateway(backend, store_urls, pki, tmp_path):
    engine = open_store(store_urls.url(backend))
    toml = tmp_path / "authorisations.toml"
    toml.write_text(WRITERS)
    app = create_app(engine, Settings(store_url="sqlite://"), Access(CertSource.TLS, authorisation.load(toml)))
    with TlsServer(engine, TlsContexts(tls_files(pki)), app=app) as srv:
        srv.engine = engine
        yield srv
    engine.dispose()


def as_system(gateway, pki, name: str | None) -> httpx.Client:
    return httpx.Client(base_url=f"{gateway.url}/fhir", verify=client_context(pki, name), timeout=20,
                        headers={"Content-Type": FHIR_JSON})


def supporting_for(source: str) -> dict:
    """The demo organisation and patients, each labelled with the writer's source system."""
    out = []
    for r in support_resources():
        out.append({**r, "meta": {"source": f"urn:oid:1.2.752.129.2.1.4.1#{source}"}})
    return transaction(*[{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                         for r in out])


def test_a_writer_writes_for_its_source_system_and_nobody_else_touches_it(gateway, pki):
    js01, js02 = as_system(gateway, pki, "journal"), as_system(gateway, pki, "journal2")
    assert js01.post("", json=supporting_for(SOURCE)).status_code == 200
    own = condition("c-own", identifier="d-own")
    assert js01.put("/Condition/c-own", json=own).status_code == 201
    unlabelled = {k: v for k, v in condition("c-unlabelled", identifier="d-unl").items() if k != "meta"}
    assert js01.put("/Condition/c-unlabelled", json=unlabelled).status_code == 201  # its only source system

    # Writing for a source system it is not authorised for
    foreign = condition("c-foreign", identifier="d-foreign", source=OTHER_SOURCE)
    refused = js01.put("/Condition/c-foreign", json=foreign)
    assert refused.status_code == 403 and refused.json()["issue"][0]["expression"] == ["Condition.meta.source"]

    # Another writer overwriting, deleting, reading or conditionally deleting what the first one owns
    taken = condition("c-own", identifier="d-own", source=OTHER_SOURCE)
    assert js02.put("/Condition/c-own", json=taken).status_code == 403
    assert js02.delete("/Condition/c-own").status_code == 403
    assert js02.get("/Condition/c-own").status_code == 404
    assert js02.delete("/Condition", params={"identifier": "d-own"}).status_code == 204  # sees no match
    assert js02.put("/Organization/ve-hemtjanst", json={**support_resources()[1], "name": "Kapad"}).status_code == 403
    assert js01.get("/Condition/c-own").status_code == 200
    assert js01.get("/Organization/ve-hemtjanst").json()["name"] != "Kapad"


def test_another_source_systems_resources_do_not_resolve(gateway, pki):
    js01, js02 = as_system(gateway, pki, "journal"), as_system(gateway, pki, "journal2")
    assert js01.post("", json=supporting_for(SOURCE)).status_code == 200
    # journal2 names journal's patient, role and units: none of them is its own, so nothing resolves
    r = js02.put("/Condition/c-borrow", json=condition("c-borrow", identifier="d-borrow", source=OTHER_SOURCE))
    assert r.status_code == 422, r.text


def test_a_writer_cannot_publish_under_another_care_giver(gateway, pki):
    """The review's finding: a Provenance naming the region's emergency unit and care giver would have made a
    municipal record look like the region's own (no consent needed under PDL)."""
    from tests.fhir.helpers import bare_condition, post_entry, provenance, urn

    js01 = as_system(gateway, pki, "journal")
    assert js01.post("", json=supporting_for(SOURCE)).status_code == 200
    c_url = urn()
    body = transaction(post_entry(bare_condition("x", identifier="d-imp"), c_url), post_entry(provenance(
        c_url, {"identifier": {"system": "urn:oid:1.2.752.29.4.19", "value": "SE2321000016-AKUT"}},
        {"identifier": {"system": "urn:oid:1.2.752.29.4.19", "value": "SE2321000016-0001"}}), urn()))
    r = js01.post("", json=body)
    assert r.status_code == 403 and "SE2321000016-0001" in r.json()["issue"][0]["diagnostics"]
    lower = condition("c-lower", identifier="d-lower", source="se2120001231-sys1")
    assert js01.put("/Condition/c-lower", json=lower).status_code == 422  # one spelling per source system


def test_callers_that_are_not_writers_are_refused(gateway, pki):
    for name in ("platform", "nohsaid"):
        r = as_system(gateway, pki, name).put("/Condition/c-x", json=condition("c-x", identifier="d-x"))
        assert r.status_code == 403, name
        assert r.headers["content-type"].startswith("application/fhir+json")
    with pytest.raises(httpx.HTTPError):  # no certificate: the handshake itself is refused
        as_system(gateway, pki, None).get("/metadata")


def test_another_writers_provenance_cannot_move_a_record_to_another_unit(gateway, pki):
    """journal2 writes a Provenance about journal's Condition naming another care unit: it is journal2's to store,
    but it shapes none of journal's records, neither now nor when journal's record is re-rendered later."""
    from sqlalchemy import select

    from adapter.store.tables import records
    from tests.fhir.helpers import GIVER, HOUSING, HSA, provenance

    js01, js02 = as_system(gateway, pki, "journal"), as_system(gateway, pki, "journal2")
    assert js01.post("", json=supporting_for(SOURCE)).status_code == 200
    assert js01.put("/Condition/c-mine", json=condition("c-mine", identifier="d-mine")).status_code == 201

    def unit() -> str:
        with gateway.engine.connect() as conn:
            return conn.execute(select(records.c.care_unit).where(records.c.resource_id == "c-mine")).scalar_one()

    home = unit()
    forged = provenance("Condition/c-mine", {"identifier": {"system": HSA, "value": HOUSING}},
                        {"identifier": {"system": HSA, "value": GIVER}}, rid="prov-forged")
    forged["meta"] = {"source": f"urn:oid:1.2.752.129.2.1.4.1#{OTHER_SOURCE}"}
    r = js02.post("", json=transaction({"resource": forged, "request": {"method": "PUT",
                                                                        "url": "Provenance/prov-forged"}}))
    assert r.status_code == 200 and r.json()["entry"][0]["response"]["status"] == "201 Created"
    assert unit() == home != HOUSING
    changed = condition("c-mine", identifier="d-mine", text="ändrad")
    assert js01.put("/Condition/c-mine", json=changed).status_code == 200
    assert unit() == home


def test_a_refused_entry_and_a_clash_in_a_batch_cost_only_themselves(gateway, pki):
    """A batch (written under one savepoint, then one by one after a refusal): a writer hides an entry for a source
    system it does not write for and an entry whose document id clashes with an earlier entry's among its own. Only
    those two are refused; nothing of theirs is stored, and the others are stored once each."""
    from sqlalchemy import func, select

    from adapter.store.tables import records

    js01 = as_system(gateway, pki, "journal")
    assert js01.post("", json=supporting_for(SOURCE)).status_code == 200
    def put(resource: dict) -> dict:
        return {"resource": resource, "request": {"method": "PUT", "url": f"Condition/{resource['id']}"}}

    entries = [put(condition("c-first", identifier="d-shared")),
               put(condition("c-foreign2", identifier="d-foreign2", source=OTHER_SOURCE)),
               put(condition("c-clash", identifier="d-shared")), put(condition("c-last", identifier="d-last"))]
    r = js01.post("", json={"resourceType": "Bundle", "type": "batch", "entry": entries})
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"].split()[0] for e in r.json()["entry"]]
    assert statuses == ["201", "403", "409", "201"], statuses
    assert js01.get("/Condition/c-foreign2").status_code == 404
    assert js01.get("/Condition/c-clash").status_code == 404
    assert js01.get("/Condition/c-first").status_code == 200 and js01.get("/Condition/c-last").status_code == 200
    with gateway.engine.connect() as conn:
        counts = dict(conn.execute(select(records.c.resource_id, func.count()).group_by(records.c.resource_id)).all())
    assert counts.get("c-first") == 1 and counts.get("c-last") == 1
    assert "c-clash" not in counts and "c-foreign2" not in counts


def test_a_writer_that_hangs_up_mid_body_is_no_error(gateway, pki, caplog):
    """A writer that sends part of its body and hangs up: no error-level line (an ASGI traceback, an 'internal
    error'), and the endpoint keeps taking writes."""
    import logging
    import socket
    import time

    caplog.set_level(logging.INFO)
    ctx = client_context(pki, "journal")
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", gateway.port)) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"PUT /fhir/Condition/c-x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/fhir+json\r\n"
                      b"Content-Length: 5000\r\n\r\n{\"resourceType\"")
            time.sleep(0.1)
    js01 = as_system(gateway, pki, "journal")
    assert js01.post("", json=supporting_for(SOURCE)).status_code == 200
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors


def test_an_overlong_identifier_is_a_refused_entry_not_a_store_failure(gateway, pki, caplog):
    """A writer sends identifiers longer than the store's columns (a 300-character document id, care contact):
    on PostgreSQL the insert failed, and the write was answered 503 'store unavailable' with an error-level line
    (as if the database were down), on SQLite it was stored. Either way alike: the entry is refused, nothing else."""
    import logging

    caplog.set_level(logging.INFO)
    js01 = as_system(gateway, pki, "journal")
    assert js01.post("", json=supporting_for(SOURCE)).status_code == 200
    long_doc = condition("c-longdoc", identifier="d" * 300)
    long_contact = condition("c-longcontact", identifier="d-lc", encounter=None)
    long_contact["encounter"] = {"identifier": {"value": "e" * 300}}
    for rid, resource in (("c-longdoc", long_doc), ("c-longcontact", long_contact)):
        r = js01.put(f"/Condition/{rid}", json=resource)
        assert r.status_code in (400, 422), (rid, r.status_code, r.text[:300])
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert js01.put("/Condition/c-fine", json=condition("c-fine", identifier="d-fine")).status_code == 201
