"""Partial answers (TKB "Partiell datahämtning", hasMore) for the contracts that have them: the official
5.18 Delsvar and a project case for a reference the producer never gave (TKB: logical error, not a fault)."""

from __future__ import annotations

import asyncio

from adapter.rivta.contracts import Contract
from adapter.suite import records as R
from adapter.suite.cases.base import MAX_PARTS, Case, CaseContext
from adapter.suite.cases.basic import personal_data_forms


def _latest_day(rec, ctx: CaseContext) -> str:
    return max(R.days(rec, ctx.contract), default="")


async def partial_answer(ctx: CaseContext) -> None:
    """5.18: an answer with hasMore; after `sleepingSeconds` its reference, sent directly to hasMore's logical
    address with the same parameters, gives the next part, and so on to the end. Each part is a valid OK answer
    of the patient, every part holds records, and a later part holds nothing newer than an earlier one (TKB:
    the newest first)."""
    patient = ctx.patient
    first = await ctx.send("unfiltered answer, part 1", ctx.request(patient))
    ctx._check("unfiltered answer, part 1", first, patient)
    if not first.usable:
        return
    if first.has_more is None:
        ctx.skip(f"no hasMore for patient {patient.kind}: partial answers are optional (TKB); declare a patient "
                 "with more records than one answer holds to show them")
    parts, part, seen = [first], first, set()
    for n in range(2, MAX_PARTS + 1):
        if part.has_more is None:
            break
        address, reference = part.has_more
        if address != ctx.decl.logical_address:
            ctx.note(f"part {n - 1}: hasMore names logical address {address} (called: {ctx.decl.logical_address})")
        if not reference:
            ctx.fail(f"part {n - 1}: hasMore without a reference")
            return
        if n == 2 and ctx.decl.part_wait_seconds:
            await asyncio.sleep(ctx.decl.part_wait_seconds)
        label = f"unfiltered answer, part {n}"
        part = await ctx.send(label, ctx.request(patient, logical_address=address, has_more_reference=reference))
        ctx._check(label, part, patient)
        if not part.usable:
            return
        if part.has_more is not None and part.has_more[1] == reference:
            ctx.fail(f"{label}: hasMore repeats the reference it was asked with (TKB: a new, unique one)")
        parts.append(part)
    else:
        ctx.fail(f"still hasMore after {MAX_PARTS} partial answers")
    for i, p in enumerate(parts, 1):
        if p.has_more is not None and not p.records:
            ctx.fail(f"part {i}: hasMore on an answer without records")
    for i in range(1, len(parts)):
        newer = [d for r in parts[i].records if (d := _latest_day(r, ctx))
                 if d > min((_latest_day(r, ctx) for r in parts[i - 1].records), default=d)]
        if newer:
            ctx.fail(f"part {i + 1} holds records newer than part {i} (TKB: the newest information first)")
    ids = [R.document_id(r, ctx.contract) for p in parts for r in p.records]
    seen.update(ids)
    repeated = len(ids) - len(seen)
    ctx.note(f"{len(parts)} parts, {len(seen)} records" + (f" ({repeated} sent again)" if repeated else ""))


async def unknown_reference(ctx: CaseContext) -> None:
    """A hasMoreReference the producer never gave: result ERROR with a text (TKB Logiska fel), no records,
    no SOAP fault, and no personal data in the text."""
    label = "hasMoreReference never given by the producer"
    answer = await ctx.send(label, ctx.request(ctx.patient, has_more_reference="npo-suite-unknown-reference"))
    if answer.fault is not None:
        ctx.fail(f"{label}: SOAP fault where the TKB asks for result ERROR")
        return
    if not answer.usable:
        ctx.fail(f"{label}: {answer.unreadable}")
        return
    if answer.result_code != "ERROR":
        ctx.fail(f"{label}: result {answer.result_code or '-'} and {len(answer.records)} records; expected ERROR")
    elif answer.records or answer.has_more:
        ctx.fail(f"{label}: records or hasMore next to result ERROR")
    message = answer.result_message or ""
    if answer.result_code == "ERROR" and not message.strip():
        ctx.fail(f"{label}: result ERROR without resultText (TKB: a text describing the error)")
    if any(f.casefold() in message.casefold() for f in personal_data_forms(ctx.patient, ctx.decl.patient_names)):
        ctx.fail(f"{label}: the result text carries personal data")


def _has_more(contract: Contract) -> bool:
    return contract.has_more


CASES = (
    Case("5.18", "Delsvar", "Delsvar med hasMore som hämtas vidare / a partial answer (hasMore) followed to its end",
         partial_answer, when=_has_more),
    Case("1.15", "hasMoreReference okänd", "Okänd hasMoreReference ger ERROR (TKB) / an unknown reference is "
         "refused with result ERROR", unknown_reference, when=_has_more),
)
