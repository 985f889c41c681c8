"""Deliberately broken producers: an ASGI wrapper around the real producer that injects one fault.

Each fault is what a real producer gets wrong: a served answer with an empty element, a date filter that
ignores the period, a record without its care giver, personal data in a SOAP fault, a wrong namespace, an
unknown patient answered with a fault, sourceSystemHSAId ≠ LogicalAddress not refused, duplicated
documentIds, and answers mixed up between concurrent requests.
"""

from __future__ import annotations

import asyncio
import re

from adapter.demo.world import default_world
from adapter.mapping.codes import SAMORDNINGSNUMMER
from adapter.rivta import soap
from adapter.rivta.contracts import BY_PATH, Contract

KNOWN_PATIENTS = {p.number for p in default_world().patients}
FAULTS = ("empty-element", "ignores-period", "no-care-giver", "personal-data-in-fault", "wrong-namespace",
          "unknown-patient-fault", "source-system-not-checked", "duplicate-document-ids", "mixed-up")

_PATIENT = re.compile(rb"<c:id>([^<]*)</c:id>\s*<c:type>([^<]*)</c:type>")
_PERIOD = re.compile(rb"<r:(timePeriod|datePeriod)>.*?</r:\1>", re.DOTALL)
_ADDRESS = re.compile(rb"<itr:LogicalAddress>([^<]*)</itr:LogicalAddress>")
_SOURCE = re.compile(rb"<r:(sourceSystemHSAI[dD])>([^<]*)</r:\1>")


def _patient(request: bytes) -> tuple[str, str] | None:
    m = _PATIENT.search(request)
    return (m.group(1).decode(), m.group(2).decode()) if m else None


class Breaker:
    def __init__(self, app, fault: str) -> None:
        assert fault in FAULTS, fault
        self.app, self.fault = app, fault
        self.latest: dict[str, bytes] = {}  # patient id -> its latest answer (mixed-up)
        self.current: str | None = None  # mixed-up: the patient "being answered", shared by all requests

    async def __call__(self, scope, receive, send) -> None:
        contract = BY_PATH.get(scope.get("path", ""))
        if scope["type"] != "http" or scope["method"] != "POST" or contract is None:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, headers, answer = await self._answer(scope, contract, body)
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(answer)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, scope, contract: Contract, request: bytes) -> tuple[int, list, bytes]:
        patient = _patient(request)
        if self.fault == "unknown-patient-fault" and patient and patient[0] not in KNOWN_PATIENTS:
            return 500, [(b"content-type", soap.CONTENT_TYPE.encode())], soap.fault("internal error: no such patient")
        if self.fault == "ignores-period":
            request = _PERIOD.sub(b"", request)
        if self.fault == "source-system-not-checked":
            address, source = _ADDRESS.search(request), _SOURCE.search(request)
            if address and source and address.group(1) != source.group(2):
                request = _SOURCE.sub(b"", request)
        if self.fault == "mixed-up" and patient:
            # The classic race: the patient is kept in shared state across slow I/O, so under concurrency
            # another request overwrites it and this one is answered with that patient's records.
            self.current = patient[0]
            await asyncio.sleep(0.01)
            status, headers, answer = await self._inner(scope, request)
            if status == 200:
                self.latest[patient[0]] = answer
                answer = self.latest.get(self.current, answer)
            return status, headers, answer
        status, headers, answer = await self._inner(scope, request)
        return status, headers, self._rewrite(contract, request, patient, status, answer)

    def _rewrite(self, contract: Contract, request: bytes, patient: tuple[str, str] | None, status: int,
                 answer: bytes) -> bytes:
        record = contract.record_element.encode()
        if self.fault == "empty-element" and patient and patient[1] == SAMORDNINGSNUMMER:
            return re.sub(rb"(<c:healthcareProfessionalName>)[^<]*(</c:healthcareProfessionalName>)", rb"\1\2",
                          answer, count=1)
        if self.fault == "no-care-giver":
            return re.sub(rb"<c:healthcareProfessionalCareGiverHSAId>[^<]*</c:healthcareProfessionalCareGiverHSAId>",
                          b"", answer)
        if self.fault == "personal-data-in-fault" and b"<faultstring>" in answer:
            pid = re.search(rb"[0-9]{12}", request)
            shown = b" (patient " + (pid.group(0) if pid else b"?") + b")"
            return answer.replace(b"</faultstring>", shown + b"</faultstring>")
        if self.fault == "wrong-namespace":
            core = contract.core_ns.encode()
            return answer.replace(b'xmlns:c="' + core + b'"', b'xmlns:c="' + core + b':wrong"')
        if self.fault == "duplicate-document-ids":
            first = re.search(b"<" + record + rb"[ >].*?</" + record + b">", answer, re.DOTALL)
            return answer[:first.end()] + first.group(0) + answer[first.end():] if first else answer
        return answer

    async def _inner(self, scope, request: bytes) -> tuple[int, list, bytes]:
        sent = False
        done = asyncio.Event()
        start: dict = {}
        chunks: list[bytes] = []

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": request, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        done.set()
        return start["status"], list(start.get("headers", [])), b"".join(chunks)
