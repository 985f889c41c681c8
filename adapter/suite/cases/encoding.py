"""Family 2, Encoding: UTF-8 or UTF-16, the same in the HTTP header and the XML prolog; special characters."""

from __future__ import annotations

from adapter.suite import records as R
from adapter.suite.cases.base import Case, CaseContext
from adapter.suite.exchange import Answer, charset_of, prolog_encoding

ALLOWED = {"utf-8": "UTF-8", "utf-16": "UTF-16", "utf-16le": "UTF-16", "utf-16be": "UTF-16"}
SPECIAL = "åäö<>&"


def _family(name: str | None) -> str | None:
    return ALLOWED.get(name.lower(), name) if name else None


def _check_encoding(ctx: CaseContext, label: str, answer: Answer) -> None:
    ex = answer.exchange
    if not ex.answer:
        return
    header = charset_of(ex.content_type)
    declared, bom = prolog_encoding(ex.answer)
    for where, value in (("Content-Type charset", header), ("XML prolog encoding", declared)):
        if value and value.lower() not in ALLOWED:
            ctx.fail(f"{label}: {where} is {value}, not UTF-8 or UTF-16")
    actual = _family(declared) or bom or "UTF-8"
    if header and _family(header) != actual:
        ctx.fail(f"{label}: Content-Type says {header} but the message is {actual} (prolog "
                 f"{declared or 'absent'}{', byte-order mark' if bom else ''})")
    ctx.note(f"{label}: Content-Type charset {header or 'absent'}, prolog encoding {declared or 'absent'}")


async def header_and_prolog(ctx: CaseContext) -> None:
    base = await ctx.baseline()
    _check_encoding(ctx, "UTF-8 request", base)
    utf16 = await ctx.ask("UTF-16 request", encoding="UTF-16")
    _check_encoding(ctx, "UTF-16 request", utf16)
    if utf16.usable and base.usable:
        ctx.compare("UTF-16 request", R.document_ids(utf16.records, ctx.contract),
                    R.document_ids(base.records, ctx.contract))


async def special_characters(ctx: CaseContext) -> None:
    text = R.text_of(await ctx.records_of_known_patients())
    wanted = ctx.decl.test_string
    if wanted:
        if wanted not in text:
            ctx.fail("the declared testString is not in the answers (or arrives altered)")
        return
    missing = [ch for ch in SPECIAL if ch not in text]
    if missing:
        ctx.fail(f"no text in the answers holds {' '.join(missing)}: register the testString åäö<>& in the "
                 "source system and declare it")
    else:
        ctx.note("each of å ä ö < > & arrives intact somewhere; declare testString for a stricter check")


CASES = (
    Case("2.1", "Encoding_HeaderProlog", "UTF-8/UTF-16 lika i HTTP-header och XML-prolog / header and prolog agree",
         header_and_prolog),
    Case("2.2", "Encoding_SpecialCharacters", "Specialtecken åäö<>& levereras oförändrade / special characters "
         "arrive intact", special_characters),
)
