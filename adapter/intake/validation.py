"""Validating a FHIR R4 resource (fhir.resources R4B); problems name elements, never their values."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pydantic
from fhir.resources.R4B import get_fhir_model_class


class InvalidResource(ValueError):
    """`issues` are (FHIRPath-like location, problem) pairs; the message joins them."""

    def __init__(self, issues: list[tuple[str, str]] | str, more: int = 0) -> None:
        self.issues = [("(resource)", issues)] if isinstance(issues, str) else issues
        text = "; ".join(f"{where}: {what}" if where != "(resource)" or len(self.issues) > 1 else what
                         for where, what in self.issues) if not isinstance(issues, str) else issues
        super().__init__(text + (f"; and {more} more" if more > 0 else ""))


def validate(raw: dict) -> Any:
    """A validated fhir.resources R4B model, or InvalidResource naming the fields (never values)."""
    rtype = raw.get("resourceType")
    try:
        model = get_fhir_model_class(str(rtype))
    except (KeyError, ValueError):
        raise InvalidResource([("resourceType", f"unknown resource type {str(rtype)[:40]!r}")]) from None
    if _NOT_FOR_XML.search(orjson.dumps(raw)) and (where := _unfit_path(raw)) is not None:
        raise InvalidResource([(where, "holds a control character XML cannot carry")])
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise _described(exc) from None
    except (KeyError, TypeError, ValueError) as exc:  # fhir-core raises bare KeyError for nested types
        raise InvalidResource(f"invalid content ({type(exc).__name__})") from None


_ELEMENT = re.compile(r"^[a-z_][A-Za-z0-9_]{0,63}$")  # FHIR element names start in lower case
# Characters JSON may carry but XML 1.0 may not (C0 controls except tab, newline, carriage return; U+FFFE/FFFF),
# as orjson writes them: found by fuzzing, they reached the RIVTA rendering and failed there.
_NOT_FOR_XML = re.compile(rb"\\u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F])|\\[bf]|\xef\xbf[\xbe\xbf]")
_BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def shown_path(path: tuple | list) -> str:
    """A location in a resource as FHIRPath (`note[0].text`), with only element names and indexes shown:
    anything else is input."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + (p if isinstance(p, str) and _ELEMENT.match(p) else "?")
    return out or "(resource)"


def _unfit_path(node: Any, path: tuple = ()) -> str | None:
    """Where the first string XML cannot carry sits, as a path of element names (never the value)."""
    if isinstance(node, str):
        return shown_path(path) if _BAD_CHAR.search(node) else None
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(key, str) and _BAD_CHAR.search(key):
            return shown_path(path)
        found = _unfit_path(value, (*path, key))
        if found is not None:
            return found
    return None


def _described(exc: pydantic.ValidationError) -> InvalidResource:
    issues = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            # An unknown element's name is input: shown only when it looks like an element name (not, say,
            # a personnummer or a name used as a key).
            msg = "an element FHIR R4B does not define"
        issues.append((shown_path(list(err["loc"])), msg))
    return InvalidResource(issues, more=exc.error_count() - len(issues))
