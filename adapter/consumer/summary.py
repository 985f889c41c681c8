"""One line per shown record for people: date, what it says, care unit, source, access basis (CLI and web)."""

from __future__ import annotations

from adapter.consumer.overview import ShownRecord

BASIS_TEXT = {"own": "egen vårdgivare", "consent": "samtycke", "emergency": "nödåtkomst"}


def summarise(r: ShownRecord) -> dict[str, str]:
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
    return {
        "date": f"{when[:4]}-{when[4:6]}-{when[6:8]}" if when else "",
        "text": text or "(utan text)",
        "unit": r.unit_name or r.group.care_unit,
        "care_unit": r.group.care_unit,
        "care_giver": r.group.care_giver,
        "source": r.source_system,
        "basis": BASIS_TEXT[r.basis.value],
        "document_id": r.document_id,
    }


def newest_first(records: list[ShownRecord]) -> list[dict[str, str]]:
    """The lines of one information type as every view lists them (the `overview` table, the staff page and its
    API): newest first by the date shown (for medication the start of treatment, not the authoring time the
    overview collects them by), undated last."""
    lines = [summarise(r) for r in records]
    return sorted(lines, key=lambda s: (bool(s["date"]), s["date"]), reverse=True)
