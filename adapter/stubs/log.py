"""Stand-in for the national log service: StoreLog 2.0 (informationsecurity:auditing:log).

Keeps what it receives in memory. Following the TKB it refuses a call (VALIDATION_ERROR, nothing stored)
that repeats a log id - within the call or one stored before - or carries more than 500 records.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from fastapi import FastAPI
from lxml import etree

from adapter.consumer.pdl.log_service import MAX_RECORDS_PER_CALL, AccessLogEntry, entry_from_element
from adapter.consumer.pdl.services import LOG_NS, STORE_LOG
from adapter.stubs.endpoint import Mode, create_soap_app
from adapter.stubs.seed import Seed

log = logging.getLogger("adapter.stubs")
L = f"{{{LOG_NS}}}"


class LogStub:
    """Received log records, in arrival order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[AccessLogEntry] = []

    def store(self, entries: list[AccessLogEntry]) -> str:
        with self._lock:
            ids = [e.log_id for e in entries]
            if len(set(ids)) != len(ids) or set(ids) & {e.log_id for e in self._entries}:
                return "VALIDATION_ERROR"
            self._entries.extend(entries)
        return "OK"

    def stored(self, *, patient_id: str | None = None, user_id: str | None = None,
               care_provider_id: str | None = None) -> list[AccessLogEntry]:
        """Stored records, optionally only those about a patient, by a user, or of a user's care provider."""
        with self._lock:
            entries = list(self._entries)
        return [
            e for e in entries
            if (patient_id is None or any(r.patient_id == patient_id for r in e.resources))
            and (user_id is None or e.user_id == user_id)
            and (care_provider_id is None or e.user_care_provider_id == care_provider_id)
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def create_log_app(seed: Seed | Path | None = None, *, mode: Mode | str = Mode.OK, delay: float = 0.0) -> FastAPI:
    """The log stand-in; its state is `app.state.stub` (a LogStub). `seed` is accepted for symmetry with the
    other stand-ins: the log starts empty."""
    stub = LogStub()
    app = create_soap_app("Log service stand-in", {STORE_LOG: lambda body, _address: _store(stub, body)},
                          mode=mode, delay=delay)
    app.state.stub = stub
    return app


def _store(stub: LogStub, body: etree._Element) -> etree._Element:
    r = f"{{{STORE_LOG.responder_ns}}}"
    logs = body.findall(f"{r}log")
    if len(logs) > MAX_RECORDS_PER_CALL:
        code, reason = "VALIDATION_ERROR", f"more than {MAX_RECORDS_PER_CALL} records in one call"
    else:
        code = stub.store([entry_from_element(el) for el in logs])
        reason = None if code == "OK" else "log id not unique"
    answer = etree.Element(STORE_LOG.response_tag, nsmap={"r": STORE_LOG.responder_ns, "l": LOG_NS})
    result = etree.SubElement(answer, f"{r}result")
    etree.SubElement(result, f"{L}resultCode").text = code
    if reason:
        etree.SubElement(result, f"{L}resultText").text = reason
    log.info("StoreLog %s: %d records", code, len(logs))
    return answer
