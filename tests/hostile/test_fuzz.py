"""Fuzzing (hypothesis) of request parsing and of ingest validation and mapping: at least 10 000 cases each in
CI, more with NPO_FUZZ_EXAMPLES. Allowed outcomes only: a parsed request or a SoapError; a RecordQuery or a
Refusal; a validated resource or InvalidResource; records or a MappingError. Anything else is a defect."""

from __future__ import annotations

import logging
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.ingest import InvalidResource, validate
from adapter.mapping import dispatch
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.producer.requests import Refusal, to_query
from adapter.rivta import soap
from adapter.rivta.contracts import CONTRACTS
from adapter.store.records import RecordQuery
from tests.hostile.conftest import leaks
from tests.hostile.strategies import broken_body, demo_resources, mutated_resource, valid_shaped

EXAMPLES = max(10_000, int(os.environ.get("NPO_FUZZ_EXAMPLES", "10000")))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
BY_TAG = {f"{{{c.responder_ns}}}{c.name}": c for c in CONTRACTS}


@FUZZ
@given(body=st.one_of(valid_shaped().map(lambda case: case[2]), broken_body().map(lambda case: case[1])))
def test_request_parsing(body):
    try:
        req = soap.read_request(body, max_bytes=64 * 1024, max_depth=64)
    except soap.SoapError as exc:
        assert not leaks(str(exc))
        return
    contract = BY_TAG.get(req.body.tag)
    if contract is None or not req.logical_address:
        return  # the producer answers these with a fault before building a query
    query = to_query(contract, req.body, req.logical_address)
    assert isinstance(query, RecordQuery | Refusal)
    if isinstance(query, Refusal):
        assert not leaks(query.message)


_context: Context | None = None


def context() -> Context:
    global _context
    if _context is None:
        supporting, _ = demo_resources()
        _context = Context(default_source_system=None, lookup=lambda _ref: None)
        for raw in supporting:
            _context.add(validate(raw))
    return _context


@FUZZ
@given(raw=mutated_resource())
def test_ingest_validation_and_mapping(raw):
    logging.disable(logging.CRITICAL)  # nothing here logs; keep hypothesis' shrinking quiet if it fails
    try:
        try:
            res = validate(raw)
        except InvalidResource as exc:
            assert not leaks(str(exc))
            return
        if not dispatch.is_clinical(res.get_resource_type()) or not res.id or dispatch.withdraws(res):
            return
        try:
            recs = dispatch.map_resource(res, context())
        except MappingError as exc:
            assert not leaks(str(exc))
            return
        for rec in recs:
            assert rec.fragment and rec.header.document_id
    finally:
        logging.disable(logging.NOTSET)
