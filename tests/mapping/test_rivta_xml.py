"""The record builder writes what lxml writes for the same tree (it replaced lxml for speed), escapes what XML
needs escaped, and refuses what XML cannot carry without echoing it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from lxml import etree

from adapter.demo.generate import generate
from adapter.ingest import ingest
from adapter.mapping import rivta_xml
from adapter.mapping.errors import MappingError
from adapter.rivta.contracts import CONTRACTS, GET_DIAGNOSIS
from adapter.store.engine import open_store

TRICKY = ["a & b", "<script>", "x > y", "line\r\nnext", "]]>", "\"quoted\" 'and' `ticks`", "åäö ÅÄÖ é ß",
          "\x7f del", "\x85 next line", "tab\there", "emoji 🩺", "&amp; already", "  spaced  ", "\u2028"]


def _both(values: list[object]) -> tuple[bytes, bytes]:
    """The same record built with rivta_xml and with lxml."""
    root, b = rivta_xml.record_root(GET_DIAGNOSIS)
    lx = etree.Element(f"{{{GET_DIAGNOSIS.responder_ns}}}{GET_DIAGNOSIS.record_element}",
                       nsmap={None: GET_DIAGNOSIS.responder_ns, "c": GET_DIAGNOSIS.core_ns})
    head, lx_head = b.node(root, "diagnosisHeader"), etree.SubElement(lx, f"{{{GET_DIAGNOSIS.core_ns}}}diagnosisHeader")
    for i, value in enumerate(values):
        b.text(head, f"f{i}", value)  # type: ignore[arg-type]
        if value is not None and str(value).strip():
            shown = ("true" if value else "false") if isinstance(value, bool) else str(value)
            etree.SubElement(lx_head, f"{{{GET_DIAGNOSIS.core_ns}}}f{i}").text = shown
    b.node(head, "empty")
    etree.SubElement(lx_head, f"{{{GET_DIAGNOSIS.core_ns}}}empty")
    return rivta_xml.serialise(root), etree.tostring(lx, encoding="utf-8", xml_declaration=False)


def test_text_is_escaped_as_lxml_escapes_it():
    ours, theirs = _both([*TRICKY, None, "", "   ", True, False, 42, 1.5])
    assert ours == theirs
    assert b"&amp; b" in ours and b"&lt;script&gt;" in ours and b"&#13;" in ours


@pytest.mark.parametrize("bad", ["\x00", "\x01", "\x0b", "\x1f", "\ufffe", "\uffff", "\ud800"])
def test_a_character_xml_cannot_carry_is_refused_without_echoing_the_text(bad):
    root, b = rivta_xml.record_root(GET_DIAGNOSIS)
    b.text(b.node(root, "diagnosisHeader"), "documentTitle", f"191212121212{bad}Tolvan")
    with pytest.raises(MappingError) as exc:
        rivta_xml.serialise(root)
    assert "1912" not in str(exc.value) and "Tolvan" not in str(exc.value)


def test_removed_and_empty_elements_are_not_written():
    root, b = rivta_xml.record_root(GET_DIAGNOSIS)
    head = b.node(root, "diagnosisHeader")
    gone = b.node(head, "gone")
    b.text(gone, "x", "1")
    assert len(gone) == 1
    head.remove(gone)
    assert len(head) == 0
    assert rivta_xml.serialise(root) == (f'<{GET_DIAGNOSIS.record_element} xmlns="{GET_DIAGNOSIS.responder_ns}" '
                                         f'xmlns:c="{GET_DIAGNOSIS.core_ns}"><c:diagnosisHeader/>'
                                         f'</{GET_DIAGNOSIS.record_element}>').encode()


def test_every_demo_record_is_what_lxml_writes_for_it(tmp_path):
    """Every record of the bundled demo data, of every contract, read by lxml and written again, is unchanged:
    the same bytes as lxml's serialisation of the same tree."""
    generate(tmp_path / "data")
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    report = ingest(engine, [tmp_path / "data"])
    assert not report.rejected
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT contract, fragment FROM records")).all()
    engine.dispose()
    assert {contract for contract, _ in rows} == {c.key for c in CONTRACTS}
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
    for contract, fragment in rows:
        fragment = bytes(fragment)
        assert etree.tostring(etree.fromstring(fragment, parser), encoding="utf-8") == fragment, contract
