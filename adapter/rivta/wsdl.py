"""Serving each contract's WSDL and its XSDs from contracts/, and the compiled request schemas.

Imports are rewritten to `?xsd=<file name>` relative to the service URL, so a client that fetches
`<service>?wsdl` resolves every schema from the same endpoint.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree
from starlette.requests import Request
from starlette.responses import Response

from adapter.rivta.contracts import CONTRACTS_DIR, Contract

XS = "http://www.w3.org/2001/XMLSchema"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
ADDRESS_PLACEHOLDER = "urn:npo-adapter:service-address"
CONTENT_TYPE = "text/xml; charset=utf-8"


def _local_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=False)


class ContractDocuments:
    """The WSDL and every XSD it reaches, with imports rewritten for serving."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.xsds: dict[str, bytes] = {}
        wsdl = etree.parse(str(contract.wsdl), _local_parser())
        self._rewrite(wsdl.getroot(), contract.wsdl.parent)
        for addr in wsdl.getroot().iter(f"{{{WSDL_SOAP}}}address"):
            addr.set("location", ADDRESS_PLACEHOLDER)
        self.wsdl = etree.tostring(wsdl, xml_declaration=True, encoding="utf-8")

    def _rewrite(self, root: etree._Element, folder: Path) -> None:
        for el in root.iter(f"{{{XS}}}import", f"{{{XS}}}include"):
            location = el.get("schemaLocation")
            if not location:
                continue
            path = (folder / location).resolve()
            if CONTRACTS_DIR.resolve() not in path.parents:
                raise ValueError(f"schema outside contracts/: {location}")
            name = path.name
            el.set("schemaLocation", f"?xsd={name}")
            if name not in self.xsds:
                self.xsds[name] = b""  # reserve: breaks import cycles
                doc = etree.parse(str(path), _local_parser())
                self._rewrite(doc.getroot(), path.parent)
                self.xsds[name] = etree.tostring(doc, xml_declaration=True, encoding="utf-8")

    def wsdl_for(self, service_url: str) -> bytes:
        return self.wsdl.replace(ADDRESS_PLACEHOLDER.encode(), service_url.encode())


@cache
def documents(contract: Contract) -> ContractDocuments:
    return ContractDocuments(contract)


@cache
def request_schema(contract: Contract) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(contract.responder_xsd), _local_parser()))


def describe(docs: ContractDocuments, request: Request) -> Response:
    """`GET <service>?wsdl` and `GET <service>?xsd=<file>`: the documents, addressed to the service's URL."""
    params = request.query_params
    if "wsdl" in params:
        return Response(docs.wsdl_for(escape(str(request.url.replace(query="")))), media_type=CONTENT_TYPE)
    name = params.get("xsd")
    if name and name in docs.xsds:
        return Response(docs.xsds[name], media_type=CONTENT_TYPE)
    return Response("not found", status_code=404, media_type="text/plain")


@cache
def element_names(contract: Contract) -> frozenset[str]:
    """Every element name the contract's schemas declare: all a fault may name of a caller's request."""
    names: set[str] = set()
    for xsd in documents(contract).xsds.values():
        names.update(str(n) for n in etree.fromstring(xsd, _local_parser()).xpath(
            "//xs:element/@name", namespaces={"xs": XS}))
    return frozenset(names)
