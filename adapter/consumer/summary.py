"""A shown record for people (CLI and web): its date and time, a line of text and the whole text, its attachments,
who wrote it (name, profession), the care unit, care giver and source by name with their HSA-ids, and the access
basis."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlsplit

from adapter.consumer.fetch import Outcome
from adapter.consumer.overview import Names, Overview, ShownRecord
from adapter.mapping.rivta_to_fhir.common import preview
from adapter.rivta.contracts import INFORMATION_TYPES, Contract

BASIS_TEXT = {"own": "egen vårdgivare", "consent": "samtycke", "emergency": "nödåtkomst"}
# shown inline (an <img> from a data: URL, which the page's CSP admits); never SVG, which can hold script
INLINE_IMAGES = {"image/png", "image/jpeg", "image/gif"}
EXTENSIONS = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif",
              "image/tiff": "tif", "text/plain": "txt", "text/html": "html"}


def _day(stamp: str | None) -> str:
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}" if stamp and len(stamp) >= 8 else ""


def _clock(stamp: str | None) -> str:
    """HH:MM of a TimeStampType (YYYYMMDDhhmmss); empty for a date alone."""
    return f"{stamp[8:10]}:{stamp[10:12]}" if stamp and len(stamp) >= 12 else ""


def summarise(r: ShownRecord, names: Names | None = None) -> dict[str, Any]:
    names = names or Names()
    ns = {"c": r.contract.core_ns}

    def first(*paths: str) -> str | None:
        for p in paths:
            found = r.element.xpath(f"string({p})", namespaces=ns)
            if found:
                return found.strip()
        return None

    body = f"c:{r.contract.body_element}"
    header = f"c:{r.contract.header_element}"
    text, when = r.contract.code("mapping.rivta_to_fhir").summary(first, body, header)
    when = when or r.author_time
    full = (text or "").strip()
    return {
        "date": _day(when),
        "time": _clock(when),
        "text": preview(full) if full else "(utan text)",
        "full_text": full,
        "attachments": attachments(r),
        "author": r.author_name or "",
        "profession": r.author_role or "",
        "author_time": " ".join(p for p in (_day(r.author_time), _clock(r.author_time)) if p),
        "unit": r.unit_name or names.of(r.group.care_unit) or r.group.care_unit,
        "care_unit": r.group.care_unit,
        "care_giver": r.group.care_giver,
        "care_giver_name": names.of(r.group.care_giver) or "",
        "source": r.source_system,
        "source_name": names.of(r.source_system) or "",
        "basis": BASIS_TEXT[r.basis.value],
        "document_id": r.document_id,
    }


def attachments(r: ShownRecord) -> list[dict[str, str]]:
    """The record's multimedia (every MultimediaType in its body: a note's multimediaEntry, a care plan's content):
    a picture to show, a text to read, a file to download, a link (https only) or a reference shown as text."""
    ns = {"c": r.contract.core_ns}
    out = []
    for n, item in enumerate(r.element.xpath(f"c:{r.contract.body_element}//c:*[c:mediaType]", namespaces=ns), 1):
        media_type = (item.findtext("c:mediaType", namespaces=ns) or "").strip().lower()
        value = "".join((item.findtext("c:value", namespaces=ns) or "").split())
        reference = (item.findtext("c:reference", namespaces=ns) or "").strip()
        name = f"{r.document_id}-{n}.{EXTENSIONS.get(media_type, 'bin')}"
        shown = {"media_type": media_type, "name": name, "data": "", "text": "", "url": ""}
        if value:
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                out.append({**shown, "kind": "unreadable"})
                continue
            if media_type in INLINE_IMAGES:
                out.append({**shown, "kind": "image", "data": value})
            elif media_type == "text/plain":
                out.append({**shown, "kind": "text", "text": raw.decode("utf-8", errors="replace")})
            else:
                out.append({**shown, "kind": "file", "data": value})
        elif reference:
            parts = urlsplit(reference)
            link = parts.scheme == "https" and bool(parts.hostname)
            out.append({**shown, "kind": "link" if link else "reference", "url": reference})
    return out


def newest_first(records: list[ShownRecord], names: Names | None = None) -> list[dict[str, Any]]:
    """The lines of one information type as every view lists them (the `overview` table, the staff page and its
    API): newest first by the date and time shown (for medication the start of treatment, not the authoring time
    the overview collects them by), undated last."""
    lines = [summarise(r, names) for r in records]
    return sorted(lines, key=lambda s: (bool(s["date"]), s["date"], s["time"]), reverse=True)


# -- what a tab and the sources table say: the same words on the page and in `overview` -------------------------
CONSENT_TEXT = ("Det finns sådana uppgifter hos en annan vårdgivare, men de visas inte: patienten har inte samtyckt "
                "till att din vårdenhet tar del av dem. Registrera samtycke om patienten samtycker, eller välj "
                "nödåtkomst om det är akut.")
BLOCKED_TEXT = ("Patienten har spärrat information hos {givers}. Spärrad information visas aldrig, inte heller vid "
                "nödåtkomst; bara patienten kan häva en spärr.")
BLOCK_STATUS_UNKNOWN_TEXT = ("Uppgifter utanför din egen vårdenhet kan finnas men visas inte: spärrtjänsten kunde "
                             "inte nås, så spärrar kan inte kontrolleras. Försök igen om en stund.")


def tab_notices(ov: Overview, contract: Contract, names: Names | None = None) -> list[tuple[str, str]]:
    """(kind, text): what exists but is not shown in this tab, and why, and the sources it still lacks. Only the
    lack of consent is said per kind of information; blocked information, and information whose block status is
    unknown, are told in the same words in every tab, so that no tab tells that blocked information of its kind
    exists (PDL: the user may learn only that blocked information exists at a care giver)."""
    names = names or Names()
    out = []
    if ov.needs_consent(contract.key):
        out.append(("consent", CONSENT_TEXT))
    if ov.blocked_care_givers:
        givers = ", ".join(names.of(g) or g for g in ov.blocked_care_givers)
        out.append(("blocked", BLOCKED_TEXT.format(givers=givers)))
    if ov.block_status_unknown:
        out.append(("block-status-unknown", BLOCK_STATUS_UNKNOWN_TEXT))
    failed = sorted({r.source.name for r in ov.sources if r.contract.key == contract.key
                     and r.outcome is Outcome.FAILED})
    if failed:
        out.append(("failed", f"Kunde inte hämtas från: {', '.join(failed)}. Det som finns där visas inte; försök "
                              "igen senare."))
    if ov.pending:
        out.append(("pending", f"Väntar på svar från: {', '.join(s.name for s in ov.pending)}."))
    return out


def empty_text(ov: Overview, contract: Contract, names: Names | None = None) -> str:
    """A tab without records: "nothing at the sources" only when nothing is hidden, failed or on its way."""
    if tab_notices(ov, contract, names):
        return "Inga uppgifter att visa."
    return f"Inga uppgifter om {contract.label.lower()} hos källorna."


def source_rows(ov: Overview) -> list[dict[str, Any]]:
    """Per source and information type, in terms of what is shown: `answered` with the number shown, never
    whether data came; a source whose information is all blocked reads as one that had none."""
    rows = []
    for s in (*ov.pending, *dict.fromkeys(r.source for r in ov.sources)):
        results = {r.contract.key: r for r in ov.sources if r.source == s}
        for c in INFORMATION_TYPES:
            r = results.get(c.key)
            status = "pending" if r is None else "failed" if r.outcome is Outcome.FAILED else "answered"
            rows.append({"source": s.name, "address": s.logical_address, "contract": c.key,
                         "information_type": c.label, "status": status, "shown": ov.shown_from.get((s, c.key), 0),
                         "consent_needed": (s, c.key) in ov.consent_hidden,
                         "reason": r.reason if r is not None and status == "failed" else ""})
        for row in rows[-len(INFORMATION_TYPES):]:
            row["text"] = status_text(row)
    return rows


def status_text(row: dict[str, Any]) -> str:
    """A sources-table row's status for people."""
    if row["status"] == "pending":
        return "väntar på svar"
    if row["status"] == "failed":
        return "misslyckades"
    shown = f"{row['shown']} visas" if row["shown"] else "inget att visa"
    return shown + ("; fler kräver samtycke" if row["shown"] and row["consent_needed"] else
                    "; uppgifter kräver samtycke" if row["consent_needed"] else "")
