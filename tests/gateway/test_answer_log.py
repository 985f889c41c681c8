"""The producer's log of an answer says who was told what (caller, contract, logical address, record count,
the platform's correlation id), so a disclosure can be traced; never the patient above debug level.

Found by the security review: the answer's log line named neither the caller nor the correlation id."""

from __future__ import annotations

import logging
import uuid

from tests.gateway.conftest import HIDDEN_FROM, client
from tests.gateway.test_embedded_mtls import ask, ids
from tests.samples import PNR, SOURCE

CORRELATION = "x-skltp-correlation-id"


def answer_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "adapter.producer" and " OK " in r.getMessage()]


def test_answer_log_names_caller_contract_address_count_and_correlation_id(gateway, pki, caplog):
    caplog.set_level(logging.INFO)
    correlation = str(uuid.uuid4())
    with client(pki, "platform") as c:
        assert ids(ask(c, gateway.url, {CORRELATION: correlation, "x-rivta-original-serviceconsumer-hsaid":
                                        HIDDEN_FROM})) == {"d-home"}
    [line] = answer_lines(caplog)
    assert line.startswith("GetDiagnosis OK ")
    assert "1 records to consumer SE165565594230-1000" in line
    assert f"at logical address {SOURCE}" in line
    assert f"original consumer {HIDDEN_FROM}" in line
    assert f"correlation id {correlation}" in line
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and PNR in r.getMessage()]


def test_consumer2_is_named_and_a_missing_correlation_id_is_made_logged_and_echoed(gateway, pki, caplog):
    caplog.set_level(logging.INFO)
    with client(pki, "consumer2") as c:
        resp = ask(c, gateway.url)
    ids(resp)
    made = resp.headers[CORRELATION]
    assert str(uuid.UUID(made)) == made
    [line] = answer_lines(caplog)
    assert "2 records to consumer SE2321000016-9KHR" in line and f"correlation id {made})" in line


def test_a_personnummer_smuggled_into_the_headers_is_not_logged(gateway, pki, caplog):
    caplog.set_level(logging.DEBUG)
    with client(pki, "platform") as c:
        resp = ask(c, gateway.url, {CORRELATION: PNR, "x-rivta-original-serviceconsumer-hsaid": PNR})
    ids(resp)
    made = resp.headers[CORRELATION]  # a correlation id that could hold a personnummer is replaced by a new one
    assert str(uuid.UUID(made)) == made
    [line] = answer_lines(caplog)
    assert f"correlation id {made})" in line and "original consumer (not shown)" in line
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and PNR in r.getMessage()]


def test_personnummer_with_other_separators_never_reach_the_log():
    """The attacker's spellings of a personnummer in correlation ids, HSA-ids and resource ids."""
    from adapter.intake.results import shown_ref
    from adapter.privacy import may_hold_personnummer

    for text in ("19121212.1212", "191212:121212", "1912-12-12-1212", "SE191212121212-TOLVAN", "197010632391"):
        assert may_hold_personnummer(text), text
        assert "1212" not in shown_ref("Condition", text)
    for text in ("SE165565594230-1000", "SE2120001231-SYS1", "SE2321000016-9KHR", "c-123",
                 "0b7e9a4e-6f0d-4a39-9a7e-3c1f6f1a2b10"):
        assert not may_hold_personnummer(text), text
