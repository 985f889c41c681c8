"""Family 1, Basic: patient id types, date periods, the request filters, SOAP faults, unknown patient and
care contact, and the TKB's INVALID_REQUEST rules."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from adapter.mapping.codes import PERSONNUMMER
from adapter.rivta.contracts import Contract, DateRule, ResultModel
from adapter.suite import records as R
from adapter.suite.cases.base import Case, CaseContext
from adapter.suite.declaration import Patient
from adapter.suite.exchange import Answer, decode


def _prescriptions(contract: Contract) -> bool:
    return contract.has_prescription_filters


def _no_prescriptions(contract: Contract) -> bool:
    return not contract.has_prescription_filters


def _care_givers(contract: Contract) -> bool:
    return contract.has_care_giver_filter


def _care_contacts(contract: Contract) -> bool:
    return contract.has_care_contact_filter
MAX_SINGLE_DAYS = 40
_STACK_TRACE = re.compile(r"Traceback \(most recent call last\)|\n\s+at [\w$.]+\(|\bException in thread\b")


# -- 1.1 patient id types -------------------------------------------------------------------------------------
async def _patient(ctx: CaseContext, patient: Patient | None, what: str) -> None:
    if patient is None:
        ctx.skip(f"no {what} declared")
    answer = await ctx.baseline(patient)
    if answer.usable and not answer.records:
        ctx.fail(f"no records for the declared {what}: the producer's test data must hold some")
    elif answer.records:
        ctx.note(f"{len(answer.records)} records")


async def personnummer(ctx: CaseContext) -> None:
    await _patient(ctx, ctx.decl.patient, "personnummer")


async def samordningsnummer(ctx: CaseContext) -> None:
    await _patient(ctx, ctx.decl.coordination_patient, "samordningsnummer")


async def reservnummer(ctx: CaseContext) -> None:
    await _patient(ctx, ctx.decl.reserve_patient, "reservnummer (with its local OID)")


# -- 1.2 date periods ---------------------------------------------------------------------------------------
async def _dated(ctx: CaseContext) -> tuple[Answer, list[str]]:
    base = await ctx.baseline()
    days = sorted({d for r in base.records for d in R.days(r, ctx.contract)})
    if not days:
        ctx.fail("the unfiltered answer has no dated records to filter: declare a patient with records")
    return base, days


async def _check_period(ctx: CaseContext, base: Answer, start: str | None, end: str | None) -> None:
    label = f"period {start or '…'}–{end or '…'}"
    got = await ctx.ask(label, period=(start, end))
    if got.usable:
        ctx.compare(label, R.document_ids(got.records, ctx.contract),
                    R.expected_in_period(base.records, ctx.contract, start, end))


async def period_all_and_each_day(ctx: CaseContext) -> None:
    base, days = await _dated(ctx)
    if not days:
        return
    await _check_period(ctx, base, days[0], days[-1])
    chosen = days if len(days) <= MAX_SINGLE_DAYS else sorted(ctx.session.rng.sample(days, MAX_SINGLE_DAYS))
    for day in chosen:  # each record time as both boundaries: inclusive days
        await _check_period(ctx, base, day, day)
    if ctx.contract.date_rule is DateRule.OVERLAP and ctx.contract.period_open_ends:  # GetMedicationHistory
        await _check_period(ctx, base, days[0], None)
        await _check_period(ctx, base, None, days[-1])
    ctx.note(f"{len(chosen)} single days and the whole span {days[0]}–{days[-1]}")


def _as_date(day: str) -> date:
    return datetime.strptime(day, "%Y%m%d").date()


async def period_random(ctx: CaseContext) -> None:
    base, days = await _dated(ctx)
    if not days:
        return
    first, last = _as_date(days[0]), _as_date(days[-1])
    span = (last - first).days
    for _ in range(ctx.decl.intervals):
        a, b = sorted(ctx.session.rng.randint(0, span) for _ in range(2))
        await _check_period(ctx, base, (first + timedelta(a)).strftime("%Y%m%d"),
                            (first + timedelta(b)).strftime("%Y%m%d"))
    ctx.note(f"{ctx.decl.intervals} random periods within {days[0]}–{days[-1]}")


async def period_before_all(ctx: CaseContext) -> None:
    base, days = await _dated(ctx)
    if ctx.decl.empty_period:
        start, end = ctx.decl.empty_period
        if base.records and R.expected_in_period(base.records, ctx.contract, start, end):
            ctx.fail(f"the declared period {start}–{end} is not before all of the patient's data")
            return
    elif days:
        before = _as_date(days[0]) - timedelta(days=1)
        start, end = (before - timedelta(days=365)).strftime("%Y%m%d"), before.strftime("%Y%m%d")
    else:
        return
    label = f"period {start}–{end}"
    got = await ctx.ask(label, period=(start, end))
    if got.usable and got.records:
        ctx.fail(f"{label}: {len(got.records)} records where an empty answer was expected")


async def period_manual(ctx: CaseContext) -> None:
    if not ctx.decl.manual_period:
        ctx.skip("no manual period declared (exploratory case)")
    base = await ctx.baseline()
    await _check_period(ctx, base, *ctx.decl.manual_period)


# -- 1.3–1.6, 1.10–1.12 filters -----------------------------------------------------------------------------
async def care_unit(ctx: CaseContext) -> None:
    await _hsa_filter(ctx, ctx.decl.care_unit, R.care_unit, "careUnit", "care unit", "careUnitHSAId", "care_units")


async def _hsa_filter(ctx: CaseContext, declared: str | None, read, label_name: str, what: str, element: str,
                      keyword: str) -> None:
    """A filter on an HSA-id (care unit, care giver): the answer holds exactly the patient's records there."""
    base = await ctx.baseline()
    value = declared
    if value is None:
        value = next((v for r in base.records if (v := read(r, ctx.contract))), None)
        if value is None:
            ctx.skip(f"no {element} declared and none in the unfiltered answer")
        ctx.note(f"{what} {value} taken from the unfiltered answer")
    expected = {R.document_id(r, ctx.contract) for r in base.records
                if (read(r, ctx.contract) or "").casefold() == value.casefold()}
    if not expected:
        ctx.fail(f"no record of the patient at {what} {value}: the filter cannot be shown")
        return
    label = f"{label_name} {value}"
    got = await ctx.ask(label, **{keyword: [value]})
    if got.usable:
        ctx.compare(label, R.document_ids(got.records, ctx.contract), expected)


async def source_system(ctx: CaseContext) -> None:
    base = await ctx.baseline()
    system = ctx.decl.system
    foreign = [i for i, r in enumerate(base.records) if R.source_system(r, ctx.contract) != system]
    if foreign:
        ctx.fail(f"the unfiltered answer holds {len(foreign)} records of other source systems than "
                 f"{system} (R3: only the LogicalAddress's source system)")
    label = f"sourceSystem {system}"
    got = await ctx.ask(label, source_system=system)
    if got.usable:
        ctx.compare(label, R.document_ids(got.records, ctx.contract), R.document_ids(base.records, ctx.contract))


async def care_contact(ctx: CaseContext) -> None:
    contact, patient = ctx.decl.care_contact, ctx.patient
    if contact is None:
        for p, answer in await ctx.known_answers():
            contact = next((c for r in answer.records if (c := R.care_contact(r, ctx.contract))), None)
            if contact:
                patient = p
                ctx.note(f"care contact {contact} taken from the unfiltered answer ({p.kind})")
                break
        else:
            ctx.skip("no careContactId declared and no record of the declared patients carries one")
    base = await ctx.baseline(patient)
    expected = {R.document_id(r, ctx.contract) for r in base.records if R.care_contact(r, ctx.contract) == contact}
    if not expected:
        ctx.fail(f"no record of the patient carries careContactId {contact}: the filter cannot be shown")
        return
    label = f"careContactId {contact}"
    got = await ctx.ask(label, patient, care_contacts=[contact], source_system=ctx.decl.system)
    if got.usable:
        ctx.compare(label, R.document_ids(got.records, ctx.contract), expected)


async def care_giver(ctx: CaseContext) -> None:
    await _hsa_filter(ctx, ctx.decl.care_giver, R.care_giver, "careGiver", "care giver", "careGiverHSAId",
                      "care_givers")


async def prescription_chain(ctx: CaseContext) -> None:
    base = await ctx.baseline()
    chain = ctx.decl.chain
    if chain is None:
        chain = next((c for r in base.records if (c := R.chain_id(r, ctx.contract))), None)
        if chain is None:
            ctx.skip("no prescriptionChainId declared and none in the unfiltered answer")
        ctx.note("prescription chain taken from the unfiltered answer")
    expected = {R.document_id(r, ctx.contract) for r in base.records if R.chain_id(r, ctx.contract) == chain}
    if not expected:
        ctx.fail("no record of the patient belongs to the declared prescription chain")
        return
    got = await ctx.ask("prescriptionChainId", prescription_chain=chain)
    if got.usable:
        ctx.compare("prescriptionChainId", R.document_ids(got.records, ctx.contract), expected)


async def _status(ctx: CaseContext, status: str) -> None:
    base = await ctx.baseline()
    expected = {R.document_id(r, ctx.contract) for r in base.records
                if R.prescription_status(r, ctx.contract) == status}
    if not expected:
        ctx.note(f"the patient has no {status} prescription: only an empty answer can be checked")
    label = f"prescriptionStatus {status}"
    got = await ctx.ask(label, prescription_status=status)
    if got.usable:
        ctx.compare(label, R.document_ids(got.records, ctx.contract), expected)


async def status_active(ctx: CaseContext) -> None:
    await _status(ctx, "Active")


async def status_inactive(ctx: CaseContext) -> None:
    await _status(ctx, "Inactive")


# -- 1.7 SOAP fault ---------------------------------------------------------------------------------------------
def personal_data_forms(patient: Patient, names: tuple[str, ...]) -> list[str]:
    out = [patient.id]
    if len(patient.id) == 12 and patient.id.isdigit():
        i = patient.id
        out += [f"{i[:8]}-{i[8:]}", i[2:], f"{i[2:8]}-{i[8:]}"]
    return out + list(names)


def _provocations(ctx: CaseContext) -> list[tuple[str, bytes]]:
    name, pid = ctx.contract.name, ctx.patient.id
    good = ctx.request(ctx.patient)
    close = f"</r:{name}>".encode()
    unexpected = good.replace(close, f"<r:npoSuiteUnexpected>{pid}</r:npoSuiteUnexpected>".encode() + close)
    cut = good.index(pid.encode()) + len(pid)
    unknown_op = good.replace(f"<r:{name}>".encode(), f"<r:{name}Unknown>".encode()).replace(
        close, f"</r:{name}Unknown>".encode())
    return [("schema-invalid request (an unknown element)", unexpected),
            ("malformed XML (the request cut off)", good[:cut + 6]),
            ("unknown operation", unknown_op)]


async def soap_fault(ctx: CaseContext) -> None:
    forms = personal_data_forms(ctx.patient, ctx.decl.patient_names)
    faults = 0
    for label, body in _provocations(ctx):
        answer = await ctx.send(label, body)
        if answer.fault is None:
            ctx.note(f"{label}: no SOAP fault (HTTP {answer.exchange.status})")
            continue
        faults += 1
        text = decode(answer.exchange.answer, answer.exchange.content_type)
        found = [f for f in forms if f.casefold() in text.casefold()]
        if found:
            ctx.fail(f"{label}: the SOAP fault carries personal data (the request's patient id or a declared name)")
        if _STACK_TRACE.search(text):
            ctx.fail(f"{label}: the SOAP fault carries a stack trace")
        if answer.exchange.status != 500:
            ctx.fail(f"{label}: a SOAP fault with HTTP {answer.exchange.status} (WS-I Basic Profile: 500)")
    if not faults:
        ctx.fail("no SOAP fault could be provoked: a technical error (here a broken request) must be answered "
                 "with a SOAP fault")
    else:
        ctx.note(f"{faults} SOAP faults provoked; check by hand that their log ids cannot be traced to the patient")


# -- 1.8, 1.9 unknown patient and care contact ------------------------------------------------------------------
def _luhn_check_digit(nine: str) -> str:
    total = 0
    for i, ch in enumerate(nine):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return str((10 - total % 10) % 10)


def unused_personnummer(taken: set[str]) -> Patient:
    """A well-formed personnummer (valid check digit) born 1900-01-01, none of the declared ones."""
    for serial in range(238, 999):
        base = f"000101{serial:03d}"
        number = "19" + base + _luhn_check_digit(base)
        if number not in taken:
            return Patient(number, PERSONNUMMER)
    raise RuntimeError("no unused personnummer")  # pragma: no cover - 760 candidates


async def unknown_patient(ctx: CaseContext) -> None:
    known = {p.id for p in ctx.decl.known_patients}
    patient = ctx.decl.unknown_patient or unused_personnummer(known)
    if patient.id in known:
        ctx.fail("the declared unknown patient is one of the declared test patients")
        return
    got = await ctx.ask("unknown patient", patient)
    if got.usable and got.records:
        ctx.fail(f"unknown patient: {len(got.records)} records where an empty answer was expected")


async def unknown_care_contact(ctx: CaseContext) -> None:
    contact = ctx.decl.unknown_care_contact or "npo-suite-no-such-care-contact"
    got = await ctx.ask("unknown careContactId", care_contacts=[contact], source_system=ctx.decl.system)
    if got.usable and got.records:
        ctx.fail(f"unknown careContactId: {len(got.records)} records where an empty answer was expected")


# -- 1.13, 1.14 INVALID_REQUEST ---------------------------------------------------------------------------------
async def _invalid(ctx: CaseContext, label: str, **filters) -> None:
    answer = await ctx.send(label, ctx.request(ctx.patient, **filters))
    if answer.fault is not None:
        ctx.fail(f"{label}: SOAP fault where the TKB asks for result ERROR / INVALID_REQUEST")
        return
    if not answer.usable:
        ctx.fail(f"{label}: {answer.unreadable}")
        return
    # a ResultType without errorCode (GetCareDocumentation 3) says INVALID_REQUEST by resultCode ERROR alone
    expected_error = "INVALID_REQUEST" if ctx.contract.result_model is ResultModel.LOG_ID else None
    if (answer.result_code, answer.error_code) != ("ERROR", expected_error):
        ctx.fail(f"{label}: result {answer.result_code or '-'}/{answer.error_code or '-'} and "
                 f"{len(answer.records)} records; expected ERROR/INVALID_REQUEST and no records")
    elif answer.records:
        ctx.fail(f"{label}: records next to result ERROR")
    message = answer.result_message or ""
    if any(f.casefold() in message.casefold() for f in personal_data_forms(ctx.patient, ctx.decl.patient_names)):
        ctx.fail(f"{label}: the result message carries personal data")


async def source_system_not_logical_address(ctx: CaseContext) -> None:
    other = "SE0000000000-NPOSUITE" if ctx.decl.logical_address != "SE0000000000-NPOSUITE" else "SE0000000000-X"
    await _invalid(ctx, f"sourceSystemHSAId {other} ≠ LogicalAddress", source_system=other)


async def care_contact_without_source_system(ctx: CaseContext) -> None:
    await _invalid(ctx, "careContactId without sourceSystemHSAId", care_contacts=["npo-suite-care-contact"])


CASES = (
    Case("1.1.1", "Personnummer", "Filtrering på personnummer / records for the patient asked for", personnummer),
    Case("1.1.2", "Samordningsnummer", "Filtrering på samordningsnummer / by coordination number", samordningsnummer),
    Case("1.1.3", "Lokalt reservnummer", "Filtrering på reservnummer med lokal OID / by local reserve number",
         reservnummer, when=_prescriptions),
    Case("1.1.4", "Lokalt reservnummer", "Filtrering på reservnummer med lokal OID / by local reserve number",
         reservnummer, when=_no_prescriptions),
    Case("1.2.1", "Period över alla data och varje dag", "Tidsfiltrering: hela spannet och varje datum som gräns / "
         "whole span and each record day as inclusive boundaries", period_all_and_each_day),
    Case("1.2.2", "Period slumpvisa intervall", "Tidsfiltrering på slumpvisa intervall / random sub-intervals",
         period_random),
    Case("1.2.3", "Period tom respons", "Period före alla data ger tomt svar / a period before all data is empty",
         period_before_all),
    Case("1.2.4", "Period manuell", "Deklarerad period / the declared exploratory period", period_manual),
    Case("1.3", "CareUnit", "Endast poster för given vårdenhet / only the care unit's records", care_unit),
    Case("1.4", "SourceSystem", "Endast poster för givet källsystem / only the source system's records",
         source_system),
    Case("1.5", "CareContact", "Endast poster för given vårdkontakt / only the care contact's records", care_contact,
         when=_care_contacts),
    Case("1.6", "CareGiver", "Endast poster för given vårdgivare / only the care giver's records", care_giver,
         when=_care_givers),
    Case("1.7", "SoapFault", "SOAP fault utan personuppgifter / a fault carries no personal data", soap_fault),
    Case("1.8", "NonExisting Patient", "Okänd patient ger tomt svar / an unknown patient gets an empty answer",
         unknown_patient),
    Case("1.9", "NonExisting CareContact", "Okänd vårdkontakt ger tomt svar / unknown care contact, empty answer",
         unknown_care_contact, when=_care_contacts),
    Case("1.10", "prescriptionChainId", "Hela ordinationskedjan / the whole prescription chain", prescription_chain,
         when=_prescriptions),
    Case("1.11", "prescriptionStatus_Active", "Endast aktiva ordinationer / only active prescriptions",
         status_active, when=_prescriptions),
    Case("1.12", "prescriptionStatus_Inactive", "Endast inaktiva ordinationer / only inactive prescriptions",
         status_inactive, when=_prescriptions),
    Case("1.13", "SourceSystem ≠ LogicalAddress", "Ger INVALID_REQUEST (TKB) / gives result ERROR INVALID_REQUEST",
         source_system_not_logical_address),
    Case("1.14", "CareContact utan SourceSystem", "Ger INVALID_REQUEST (TKB) / careContactId alone is refused",
         care_contact_without_source_system, when=_care_contacts),
)
