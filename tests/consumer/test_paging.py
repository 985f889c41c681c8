"""The consumer follows GetCareDocumentation 3.0 partial answers (hasMore) to the end: directly addressed to
the logical address the answer names, with otherwise identical parameters; a producer that never stops is
cut off after `max_pages` answers."""

from __future__ import annotations

import asyncio

import httpx
import orjson
from lxml import etree

from adapter.consumer.fetch import FetchSettings, Outcome, Source, fetch_all
from adapter.ingest import ingest
from adapter.rivta import soap
from adapter.rivta.contracts import GET_CARE_DOCUMENTATION_3 as GCD3
from adapter.rivta.contracts import REGISTRY_NS, SOAP_NS
from tests.mapping.test_care_documentation import docref
from tests.samples import PNR, SOURCE, bundle, support_bundle

R, C = GCD3.responder_ns, GCD3.core_ns


def fetch(client: httpx.AsyncClient, url: str, settings: FetchSettings = FetchSettings()):
    async def go():
        async with client:
            return await fetch_all(client, [Source("kommun", url, SOURCE)], PNR, "1.2.752.129.2.1.3.1", settings,
                                   contracts=(GCD3,))

    (result,) = asyncio.run(go())
    return result


def ids(result) -> list[str]:
    return [r.findtext(f"{{{C}}}header/{{{C}}}record/{{{C}}}id/{{{C}}}root") for r in result.records]


def test_follows_every_part_of_a_real_producer(store, server_for, tmp_path):
    (tmp_path / "support.json").write_bytes(orjson.dumps(support_bundle()))
    notes = [docref(id=f"note-{n}", date=f"2024-02-{n:02d}T09:00:00+01:00") for n in range(1, 12)]
    (tmp_path / "data.json").write_bytes(orjson.dumps(bundle(*notes)))
    assert not ingest(store, [tmp_path / "support.json", tmp_path / "data.json"]).rejected
    srv = server_for(store, max_records_per_answer=4)
    result = fetch(httpx.AsyncClient(trust_env=False), srv.url)
    assert result.outcome is Outcome.DATA, result.reason
    assert result.pages == 3 and result.has_more is None
    assert ids(result) == [f"note-{n}" for n in range(11, 0, -1)]


def _record(n: int) -> bytes:
    return (f'<careDocumentation xmlns="{R}" xmlns:c="{C}"><c:header><c:accessControlHeader>'
            f'<c:patientId><c:root>1.2.752.129.2.1.3.1</c:root><c:extension>{PNR}</c:extension></c:patientId>'
            f'<c:blockComparisonTime>20240101000000</c:blockComparisonTime>'
            f'<c:approvedForPatient>true</c:approvedForPatient></c:accessControlHeader>'
            f'<c:sourceSystemId><c:root>1.2.752.129.2.1.4.1</c:root><c:extension>{SOURCE}</c:extension>'
            f'</c:sourceSystemId><c:record><c:id><c:root>rec-{n}</c:root></c:id>'
            f'<c:timestamp>20240101000000</c:timestamp></c:record></c:header><c:body><c:clinicalDocumentNoteCode>'
            f'<c:originalText>x</c:originalText></c:clinicalDocumentNoteCode></c:body></careDocumentation>').encode()


class Looping:
    """A producer that always says there is more (and repeats a record), remembering what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str | None, str | None, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        root = etree.fromstring(request.content)
        body = root.find(f"{{{SOAP_NS}}}Body/{{{R}}}GetCareDocumentation")
        self.asked.append((root.findtext(f".//{{{REGISTRY_NS}}}LogicalAddress"),
                           body.findtext(f"{{{R}}}hasMoreReference"),
                           body.findtext(f"{{{R}}}patientId/{{{C}}}extension")))
        n = len(self.asked)
        more = soap.has_more_element(GCD3, "SE0000000000-DIRECT", f"ref-{n}")
        result = soap.result_element(GCD3, "OK", soap.new_log_id())
        content = b"".join(soap.response_parts(GCD3, [_record(n), _record(1)], result, more))
        return httpx.Response(200, stream=httpx.ByteStream(content), headers={"content-type": soap.CONTENT_TYPE})


def test_a_producer_that_never_stops_is_cut_off():
    producer = Looping()
    result = fetch(httpx.AsyncClient(transport=httpx.MockTransport(producer)), "http://producer.example",
                   FetchSettings(max_pages=5))
    assert result.outcome is Outcome.DATA
    assert result.pages == 5 and len(producer.asked) == 5
    assert result.has_more == ("SE0000000000-DIRECT", "ref-5") and "stopped after 5" in result.reason
    assert ids(result) == ["rec-1", "rec-2", "rec-3", "rec-4", "rec-5"]  # rec-1 repeated on every page: once
    # the first call to the source, every later one directly addressed with the reference, same patient
    assert producer.asked[0] == (SOURCE, None, PNR)
    assert producer.asked[1:] == [("SE0000000000-DIRECT", f"ref-{n}", PNR) for n in range(1, 5)]


def test_an_error_on_a_later_part_fails_the_source():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            more = soap.has_more_element(GCD3, SOURCE, "ref-1")
            result = soap.result_element(GCD3, "OK", soap.new_log_id())
            content = b"".join(soap.response_parts(GCD3, [_record(1)], result, more))
        else:
            result = soap.result_element(GCD3, "ERROR", soap.new_log_id(), f"reference of {PNR} expired",
                                         error_code="INVALID_REQUEST")
            content = b"".join(soap.response_parts(GCD3, [], result))
        return httpx.Response(200, stream=httpx.ByteStream(content), headers={"content-type": soap.CONTENT_TYPE})

    result = fetch(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "http://producer.example")
    assert result.outcome is Outcome.FAILED
    assert "ERROR" in result.reason and "answer 2" in result.reason and PNR not in result.reason
