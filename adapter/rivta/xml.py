"""Hardened XML parsing: no DTDs, no entities, no network, size and depth caps."""

from __future__ import annotations

import functools
import threading

from lxml import etree

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_DEPTH = 64


class UnsafeXml(ValueError):
    """The document was refused before or while parsing (the message is safe to show)."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


_local = threading.local()


def _thread_parser() -> etree.XMLParser:
    """This thread's parser: a parser may serve one parse at a time, and making one cost a third of parsing a
    small request (the producer parses one per call)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _parser()
    return parser


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH) -> etree._Element:
    """Parse untrusted bytes into an element tree root, or raise UnsafeXml."""
    if len(data) > max_bytes:
        raise UnsafeXml(f"document larger than {max_bytes} bytes")
    # A DOCTYPE is never legitimate in SOAP 1.1 (WS-I BP R1008); refuse it before libxml2 sees it.
    # The keyword is case-sensitive in XML; in character data it would be escaped.
    if b"<!DOCTYPE" in data or b"<\x00!\x00D\x00O\x00C" in data or b"\x00<\x00!\x00D\x00O\x00C" in data:
        raise UnsafeXml("document type declarations are not allowed")
    try:
        root = etree.fromstring(data, _thread_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"malformed XML: {_syntax_reason(exc)}") from None
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise UnsafeXml("document type declarations are not allowed")
    _check_depth(root, max_depth)
    return root


def _syntax_reason(exc: etree.XMLSyntaxError) -> str:
    # libxml2 messages quote parts of the input; keep only the position, never the content.
    line, col = exc.position if exc.position else (0, 0)
    return f"line {line}, column {col}"


def _check_depth(root: etree._Element, max_depth: int) -> None:
    if _deeper_than(max_depth)(root):
        raise UnsafeXml(f"document nested deeper than {max_depth} levels")


@functools.cache
def _deeper_than(max_depth: int) -> etree.XPath:
    """Whether a node other than text lies below `max_depth` levels of elements (the root is level 1), asked of
    libxml2 in one XPath rather than by walking the tree in Python (that walk was nearly a tenth of the
    consumer's CPU per overview in bench/fanout.py)."""
    return etree.XPath("boolean(" + "/*" * max_depth + "/node()[not(self::text())])")
