"""Stand-in for the block service: CheckBlocks 4.0.

Which blocks concern the reader (PDL): an outer block (yttre spärr) keeps the information from every other
care provider; an inner block (inre spärr) keeps a care unit's information from everyone outside that unit,
other units of the same care provider and other care providers alike.

Whether a block covers a row (the national evaluation rules, TKB informationsecurity:authorization:blocking
4.0.4 and the contract's description): same care provider, and same care unit when the block names one;
a kind of information the block leaves out ("lak", "upp") is not blocked; a block without a validity period
blocks all of it; a period overlapping the row's period, fully or partly, blocks; one entirely outside does
not. A temporary revoke for the reader's care unit (and employee, when it names one) that has not ended
lifts the block. A row with an end before its start, an unreadable date or an unknown kind is answered
VALIDATIONERROR; an unsupported patient id makes the whole call VALIDATIONERROR.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from lxml import etree

from adapter.consumer.pdl.services import BLOCKING_NS, CHECK_BLOCKS, PATIENT_ID_ROOTS
from adapter.stubs.endpoint import Mode, create_soap_app, find_text, parse_datetime, utc_now
from adapter.stubs.seed import EXCLUDABLE_TYPES, BlockRecord, Seed, load_seed

log = logging.getLogger("adapter.stubs")
B = f"{{{BLOCKING_NS}}}"


@dataclass(frozen=True)
class Reader:
    employee: str
    care_provider: str
    care_unit: str


@dataclass(frozen=True)
class Information:
    care_provider: str
    care_unit: str
    start: datetime
    end: datetime
    information_type: str | None = None


def applies_to(block: BlockRecord, reader: Reader) -> bool:
    if block.block_type == "Outer":
        return reader.care_provider != block.care_provider
    return not (reader.care_provider == block.care_provider and reader.care_unit == block.care_unit)


def covers(block: BlockRecord, info: Information) -> bool:
    if info.care_provider != block.care_provider:
        return False
    if block.care_unit is not None and info.care_unit != block.care_unit:
        return False
    if info.information_type in block.excluded_types:
        return False
    if block.start is not None and info.end < block.start:
        return False
    return block.end is None or info.start <= block.end


def revoked_for(block: BlockRecord, reader: Reader, now: datetime) -> bool:
    return any(r.care_unit == reader.care_unit and r.employee in (None, reader.employee) and now <= r.end
               for r in block.revokes)


class BlockingStub:
    """The stand-in's blocks (thread-safe)."""

    def __init__(self, blocks: Iterable[BlockRecord] = (), clock: Callable[[], datetime] = utc_now) -> None:
        self._lock = threading.Lock()
        self._blocks = list(blocks)
        self.clock = clock

    def add(self, block: BlockRecord) -> None:
        with self._lock:
            self._blocks.append(block)

    def blocks(self, patient_id: str | None = None) -> list[BlockRecord]:
        with self._lock:
            return [b for b in self._blocks if patient_id is None or b.patient_id == patient_id]

    def status(self, patient_type: str, patient_id: str, reader: Reader, info: Information) -> str:
        now = self.clock()
        blocked = any(
            b.patient_type == patient_type and b.patient_id == patient_id
            and applies_to(b, reader) and covers(b, info) and not revoked_for(b, reader, now)
            for b in self.blocks(patient_id)
        )
        return "BLOCKED" if blocked else "OK"


def create_blocking_app(seed: Seed | Path | None = None, *, mode: Mode | str = Mode.OK, delay: float = 0.0,
                        clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """The block stand-in; its state is `app.state.stub` (a BlockingStub)."""
    if isinstance(seed, Path):
        seed = load_seed(seed)
    stub = BlockingStub(seed.blocks if seed else (), clock)
    app = create_soap_app("Block service stand-in", {CHECK_BLOCKS: lambda body, _address: _check(stub, body)},
                          mode=mode, delay=delay)
    app.state.stub = stub
    return app


def _check(stub: BlockingStub, body: etree._Element) -> etree._Element:
    r = f"{{{CHECK_BLOCKS.responder_ns}}}"
    root, extension = find_text(body, f"{r}patientId", f"{B}root"), find_text(body, f"{r}patientId", f"{B}extension")
    reader = Reader(*(find_text(body, f"{r}accessingActor", f"{B}{name}") or ""
                      for name in ("employeeId", "careProviderId", "careUnitId")))
    answer = etree.Element(CHECK_BLOCKS.response_tag, nsmap={"r": CHECK_BLOCKS.responder_ns, "b": BLOCKING_NS})
    outcome = etree.SubElement(answer, f"{r}checkBlocksResult")
    result = etree.SubElement(outcome, f"{B}result")
    if root not in PATIENT_ID_ROOTS or not extension:
        etree.SubElement(result, f"{B}resultCode").text = "VALIDATIONERROR"
        etree.SubElement(result, f"{B}resultText").text = "unsupported or missing patient identifier"
        log.info("CheckBlocks VALIDATIONERROR")
        return answer
    etree.SubElement(result, f"{B}resultCode").text = "OK"
    counts: dict[str, int] = {}
    for entity in body.iterfind(f"{r}informationEntities"):
        status = _row_status(stub, root, extension, reader, entity)
        counts[status] = counts.get(status, 0) + 1
        row = etree.SubElement(outcome, f"{B}checkResults")
        etree.SubElement(row, f"{B}status").text = status
        etree.SubElement(row, f"{B}rowNumber").text = find_text(entity, f"{B}rowNumber")
    log.info("CheckBlocks OK: %s", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return answer


def _row_status(stub: BlockingStub, root: str, extension: str, reader: Reader, entity: etree._Element) -> str:
    kind = find_text(entity, f"{B}informationType") or None
    try:
        info = Information(find_text(entity, f"{B}informationCareProviderId") or "",
                           find_text(entity, f"{B}informationCareUnitId") or "",
                           parse_datetime(find_text(entity, f"{B}informationStartDate") or ""),
                           parse_datetime(find_text(entity, f"{B}informationEndDate") or ""), kind)
    except ValueError:
        return "VALIDATIONERROR"
    if info.end < info.start or (kind is not None and kind not in EXCLUDABLE_TYPES):
        return "VALIDATIONERROR"
    return stub.status(root, extension, reader, info)
