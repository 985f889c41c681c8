"""Blocks (spärr) through the block service (informationsecurity:authorization:blocking 4.0): CheckBlocks.

The consumer sends one information entity per piece of information it wants to show - care provider, care
unit, the period the information covers, optionally its kind ("lak", "upp") - numbered by row; the service
answers OK, BLOCKED or VALIDATIONERROR per row. Only rows answered OK may be shown.

Logical address: SE165565594230-1000 for the national service (which holds every block, as NPÖ must check),
or a region's HSA-id for its local service (contract WSDL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import httpx
from lxml import etree

from adapter.consumer.pdl.actor import AccessingActor, add_accessing_actor, add_patient_id
from adapter.consumer.pdl.services import BLOCKING_NS, CHECK_BLOCKS, PERSONNUMMER
from adapter.consumer.pdl.soap_call import call, invalid_answer, require_success, result_code, sub, xml_datetime

MEDICATION = "lak"  # kinds of information a block may leave out
ALERT = "upp"


class BlockStatus(StrEnum):
    OK = "OK"
    BLOCKED = "BLOCKED"
    VALIDATIONERROR = "VALIDATIONERROR"  # the service could not check this row: treat as blocked


@dataclass(frozen=True)
class InformationEntity:
    care_provider_hsa_id: str
    care_unit_hsa_id: str
    start: datetime  # period the information covers (naive = Swedish local time)
    end: datetime
    information_type: str | None = None  # MEDICATION or ALERT, when the information is of that kind


@dataclass(frozen=True)
class BlockRow:
    entity: InformationEntity
    status: BlockStatus

    @property
    def may_show(self) -> bool:
        return self.status is BlockStatus.OK


async def check_blocks(client: httpx.AsyncClient, url: str, logical_address: str, actor: AccessingActor,
                       patient_id: str, entities: Sequence[InformationEntity],
                       patient_type: str = PERSONNUMMER) -> list[BlockRow]:
    """The block status of every entity, in the order given (row numbers are assigned here)."""
    if not entities:
        return []
    svc = CHECK_BLOCKS
    r, b = svc.responder_ns, BLOCKING_NS
    req = etree.Element(svc.request_tag, nsmap={"r": r, "b": b})
    add_accessing_actor(req, r, b, actor)
    add_patient_id(req, r, b, patient_id, patient_type)
    for row, entity in enumerate(entities, start=1):
        el = sub(req, r, "informationEntities")
        sub(el, b, "informationStartDate", xml_datetime(entity.start))
        sub(el, b, "informationEndDate", xml_datetime(entity.end))
        sub(el, b, "informationCareUnitId", entity.care_unit_hsa_id)
        sub(el, b, "informationCareProviderId", entity.care_provider_hsa_id)
        if entity.information_type:
            sub(el, b, "informationType", entity.information_type)
        sub(el, b, "rowNumber", str(row))
    answer = await call(client, url, svc, logical_address, req)
    outcome = answer.find(f"{{{r}}}checkBlocksResult")
    result = outcome.find(f"{{{b}}}result")
    require_success(svc, result_code(result, b), result, b)

    statuses: dict[int, BlockStatus] = {}
    for el in outcome.findall(f"{{{b}}}checkResults"):
        row = int(el.findtext(f"{{{b}}}rowNumber"))
        if row in statuses or not 1 <= row <= len(entities):
            raise invalid_answer(svc, f"row {row} unexpected or answered twice")
        statuses[row] = BlockStatus(el.findtext(f"{{{b}}}status").strip())
    if len(statuses) != len(entities):
        raise invalid_answer(svc, f"{len(entities) - len(statuses)} of {len(entities)} rows not answered")
    return [BlockRow(entity, statuses[row]) for row, entity in enumerate(entities, start=1)]
