"""Stand-in for the national consent service: CheckConsent and RegisterExtendedConsent 2.0.

An assertion (consent or emergency) lets an actor read when it is for the patient, the actor's care provider
and care unit, for all staff there or for this employee, has started, has not ended and was not withdrawn.
Where both kinds apply, the answer names Consent. A patient id of a kind the national service does not take
(personnummer, samordningsnummer, national reserve number) is answered VALIDATION_ERROR.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from lxml import etree

from adapter.consumer.pdl.services import CHECK_CONSENT, CONSENT_NS, PATIENT_ID_ROOTS, REGISTER_EXTENDED_CONSENT
from adapter.stubs.endpoint import Mode, create_soap_app, find_text, parse_datetime, utc_now
from adapter.stubs.seed import ConsentRecord, Seed, load_seed

log = logging.getLogger("adapter.stubs")
C = f"{{{CONSENT_NS}}}"


class ConsentStub:
    """The stand-in's assertions (thread-safe: tests read them while the server runs)."""

    def __init__(self, consents: Iterable[ConsentRecord] = (), clock: Callable[[], datetime] = utc_now) -> None:
        self._lock = threading.Lock()
        self._consents = {c.assertion_id: c for c in consents}
        self.clock = clock

    def check(self, patient_type: str, patient_id: str, employee: str, care_provider: str,
              care_unit: str) -> str | None:
        """The kind of the valid assertion for this actor and patient, or None."""
        now = self.clock()
        with self._lock:
            kinds = {
                c.assertion_type for c in self._consents.values()
                if c.patient_type == patient_type and c.patient_id == patient_id
                and c.care_provider == care_provider and c.care_unit == care_unit
                and c.employee in (None, employee)
                and (c.start is None or c.start <= now) and (c.end is None or now <= c.end)
                and (c.withdrawn is None or now < c.withdrawn)
            }
        return "Consent" if "Consent" in kinds else ("Emergency" if kinds else None)

    def register(self, record: ConsentRecord) -> str:
        with self._lock:
            if record.assertion_id in self._consents:
                return "ALREADYEXISTS"
            self._consents[record.assertion_id] = record
        return "OK"

    def withdraw(self, assertion_id: str, when: datetime | None = None) -> None:
        """Mark an assertion withdrawn (what CancelExtendedConsent does); for tests and demos."""
        with self._lock:
            self._consents[assertion_id] = replace(self._consents[assertion_id], withdrawn=when or self.clock())

    def assertions(self, patient_id: str | None = None) -> list[ConsentRecord]:
        with self._lock:
            return [c for c in self._consents.values() if patient_id is None or c.patient_id == patient_id]


def create_consent_app(seed: Seed | Path | None = None, *, mode: Mode | str = Mode.OK, delay: float = 0.0,
                       clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """The consent stand-in; its state is `app.state.stub` (a ConsentStub)."""
    if isinstance(seed, Path):
        seed = load_seed(seed)
    stub = ConsentStub(seed.consents if seed else (), clock)
    app = create_soap_app("Consent service stand-in", {
        CHECK_CONSENT: lambda body, _address: _check(stub, body),
        REGISTER_EXTENDED_CONSENT: lambda body, _address: _register(stub, body),
    }, mode=mode, delay=delay)
    app.state.stub = stub
    return app


def _check(stub: ConsentStub, body: etree._Element) -> etree._Element:
    r = f"{{{CHECK_CONSENT.responder_ns}}}"
    root, extension = find_text(body, f"{r}patientId", f"{C}root"), find_text(body, f"{r}patientId", f"{C}extension")
    kind = None
    if root in PATIENT_ID_ROOTS and extension:
        code = "OK"
        kind = stub.check(root, extension, *(find_text(body, f"{r}accessingActor", f"{C}{name}") or ""
                                              for name in ("employeeId", "careProviderId", "careUnitId")))
    else:
        code = "VALIDATION_ERROR"
    answer = etree.Element(CHECK_CONSENT.response_tag, nsmap={"r": CHECK_CONSENT.responder_ns, "c": CONSENT_NS})
    check = etree.SubElement(answer, f"{r}checkResult")
    _result(check, code, None if code == "OK" else "unsupported or missing patient identifier")
    etree.SubElement(check, f"{C}hasConsent").text = "true" if kind else "false"
    if kind:
        etree.SubElement(check, f"{C}assertionType").text = kind
    log.info("CheckConsent %s: %s", code, "assertion found" if kind else "no assertion")
    return answer


def _register(stub: ConsentStub, body: etree._Element) -> etree._Element:
    r = f"{{{REGISTER_EXTENDED_CONSENT.responder_ns}}}"

    def text(name: str) -> str | None:
        return find_text(body, f"{r}{name}")

    root, extension = find_text(body, f"{r}patientId", f"{C}root"), find_text(body, f"{r}patientId", f"{C}extension")
    code, reason = "OK", None
    try:
        start = parse_datetime(text("startDate")) if text("startDate") else stub.clock()
        end = parse_datetime(text("endDate")) if text("endDate") else None
    except ValueError:
        start = end = None
        code, reason = "VALIDATION_ERROR", "unreadable date"
    if code == "OK" and (root not in PATIENT_ID_ROOTS or not extension):
        code, reason = "VALIDATION_ERROR", "unsupported or missing patient identifier"
    elif code == "OK" and end is not None and end <= start:
        code, reason = "VALIDATION_ERROR", "endDate is not after startDate"
    if code == "OK":
        code = stub.register(ConsentRecord(
            assertion_id=text("assertionId"), assertion_type=text("assertionType"), patient_type=root,
            patient_id=extension, care_provider=text("careProviderId"), care_unit=text("careUnitId"),
            employee=text("employeeId"), start=start, end=end))
        if code != "OK":
            reason = "assertion id already registered"
    answer = etree.Element(REGISTER_EXTENDED_CONSENT.response_tag,
                           nsmap={"r": REGISTER_EXTENDED_CONSENT.responder_ns, "c": CONSENT_NS})
    _result(answer, code, reason, outer=r)
    log.info("RegisterExtendedConsent %s", code)
    return answer


def _result(parent: etree._Element, code: str, text: str | None, outer: str = C) -> None:
    result = etree.SubElement(parent, f"{outer}result")
    etree.SubElement(result, f"{C}resultCode").text = code
    if text:
        etree.SubElement(result, f"{C}resultText").text = text
