"""Hypothesis strategies: SOAP requests (valid-shaped with random filters, and broken bodies) and FHIR
resources (demo resources with random mutations)."""

from __future__ import annotations

import copy
import random
from functools import cache
from typing import Any

from hypothesis import strategies as st

from adapter.demo.generate import clinical_resources
from adapter.demo.world import default_world
from adapter.rivta.contracts import CONTRACTS, Contract
from adapter.rivta.request_builder import build_request

WORLD = default_world()
SOURCE = WORLD.source_system
PNR_OID, SNR_OID = "1.2.752.129.2.1.3.1", "1.2.752.129.2.1.3.3"

# Text that XML 1.0 can carry (lxml refuses control characters and surrogates when building).
xml_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)
digits = st.text("0123456789", min_size=0, max_size=14)
days = st.one_of(
    st.dates().map(lambda d: d.strftime("%Y%m%d")),
    st.sampled_from(["20241301", "20230229", "00000000", "99991231", "2024-01-01", ""]),
    xml_text,
)
hsa_ids = st.one_of(st.sampled_from([SOURCE, "SE2120001231-HT01", "SE2120001231-SB01", "se2120001231-ht01"]),
                    st.from_regex(r"SE[0-9]{10}-[A-Za-z0-9]{1,8}", fullmatch=True), xml_text)
patient_ids = st.one_of(st.sampled_from([p.number for p in WORLD.patients]), digits, xml_text)
patient_types = st.one_of(st.sampled_from([PNR_OID, SNR_OID, "1.2.752.97.1", "1.2", ""]),
                          st.from_regex(r"[0-2](\.[0-9]{1,4}){1,6}", fullmatch=True), xml_text)
contracts = st.sampled_from(CONTRACTS)


@st.composite
def valid_shaped(draw) -> tuple[Contract, str, bytes]:
    """A request built like a consumer would, with random values in every field: (contract, patient id, body)."""
    contract = draw(contracts)
    patient = draw(patient_ids)
    body = build_request(
        contract,
        draw(st.one_of(st.just(SOURCE), hsa_ids, st.none())),
        patient,
        draw(patient_types),
        period=draw(st.one_of(st.none(), st.tuples(st.one_of(st.none(), days), st.one_of(st.none(), days)))),
        care_units=draw(st.lists(hsa_ids, max_size=3)),
        care_givers=draw(st.lists(hsa_ids, max_size=2)),
        source_system=draw(st.one_of(st.none(), st.just(SOURCE), hsa_ids)),
        care_contacts=draw(st.lists(xml_text, max_size=2)),
        prescription_chain=draw(st.one_of(st.none(), st.tuples(patient_types, st.one_of(st.none(), xml_text)))),
        prescription_status=draw(st.one_of(st.none(), st.sampled_from(["active", "inactive"]), xml_text)),
        encoding=draw(st.sampled_from(["UTF-8", "UTF-8", "UTF-16"])),
    )
    return contract, patient, body


def good_request(contract: Contract, patient: str = WORLD.patients[0].number) -> bytes:
    return build_request(contract, SOURCE, patient)


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """A good request broken in a few random ways: cut, bytes flipped, bytes inserted, a slice repeated."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cut", "flip", "insert", "repeat", "tag"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "cut":
            del data[at:]
        elif kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.one_of(st.binary(max_size=12), st.sampled_from(
                [b"<", b">", b"&", b"&amp;", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<?x?>", b'"', b"\x00",
                 b"<!DOCTYPE x>", b"&#0;", b"&#x110000;", b"xmlns:r='urn:x'", b"</soapenv:Body>"])))
        elif kind == "repeat":
            end = draw(st.integers(at, min(len(data), at + 200)))
            data[at:at] = data[at:end] * draw(st.integers(1, 20))
        elif kind == "tag":
            data = bytearray(bytes(data).replace(draw(st.sampled_from([b"patientId", b"Body", b"Envelope", b"id>"])),
                                                 draw(st.sampled_from([b"x", b"patientid", b"", b"a:b"])), 1))
    return bytes(data)


@st.composite
def broken_body(draw) -> tuple[Contract, bytes]:
    contract = draw(contracts)
    body = draw(st.one_of(
        mutated(good_request(contract)),
        st.binary(max_size=600),
        xml_text.map(str.encode),
        st.sampled_from([b"", b"<", b"<?xml version='1.0'?>", b"<soapenv:Envelope/>", b"\xef\xbb\xbf<a/>",
                         b"\xff\xfe<\x00a\x00/\x00>\x00"]),
    ))
    return contract, body


# -- FHIR --------------------------------------------------------------------------------------------------

@cache
def demo_resources() -> tuple[list[dict], list[dict]]:
    """(supporting, clinical) resources of the demo world's first two patients."""
    from adapter.demo.generate import organisation, patient_resource
    from adapter.mapping.context import SUPPORTING_TYPES

    supporting = organisation(WORLD)
    clinical: list[dict] = []
    for p in WORLD.patients[:2]:
        rng = random.Random(p.id)
        supporting.append(patient_resource(p))
        for r in clinical_resources(WORLD, p, rng):
            (supporting if r["resourceType"] in SUPPORTING_TYPES else clinical).append(r)
    return supporting, clinical


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False),
                         st.text(max_size=30), st.sampled_from(["", "2024-13-45", "2024-02-01T25:00:00+01:00",
                                                                "Patient/pat-2", "urn:oid:1.2.752.29.4.19",
                                                                "entered-in-error", "refuted", "active"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)), max_leaves=8)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _set(node: Any, path: tuple, value: Any, delete: bool) -> None:
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


@st.composite
def mutated_resource(draw) -> dict:
    """A demo clinical resource with 1-4 random changes: a value replaced by any JSON, an element dropped,
    an unknown element added, or the resource type swapped."""
    _, clinical = demo_resources()
    res = copy.deepcopy(draw(st.sampled_from(clinical)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(res) if p != ("resourceType",)]
        kind = draw(st.sampled_from(["replace", "replace", "drop", "add", "type"]))
        if kind == "type":
            res["resourceType"] = draw(st.sampled_from(["Condition", "Observation", "CarePlan", "MedicationRequest",
                                                        "DocumentReference", "Composition", "Nope", ""]))
        elif kind == "add" or not paths:
            res[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        else:
            path = draw(st.sampled_from(paths))
            try:
                _set(res, path, draw(json_values), delete=kind == "drop")
            except (KeyError, IndexError, TypeError):  # an earlier change removed the parent
                pass
    return res
