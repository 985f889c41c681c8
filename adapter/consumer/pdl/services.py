"""The national PDL services the consumer calls, described once: namespaces, SOAP action, URL path and the
project's own schema. The clients and the local stand-ins (adapter/stubs) both read these descriptions."""

from __future__ import annotations

from functools import cache

from lxml import etree

from adapter.rivta.contracts import Interaction

# Logical address of Inera's national services (national block service, national log service).
NATIONAL_HSA_ID = "SE165565594230-1000"

# Patient identifier kinds the national consent and block services accept (IIType root).
PERSONNUMMER = "1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER = "1.2.752.129.2.1.3.3"
NATIONAL_RESERVE_NUMBER = "1.2.752.74.9.1"
PATIENT_ID_ROOTS = frozenset({PERSONNUMMER, SAMORDNINGSNUMMER, NATIONAL_RESERVE_NUMBER})

CONSENT_NS = "urn:riv:informationsecurity:authorization:consent:2"
BLOCKING_NS = "urn:riv:informationsecurity:authorization:blocking:4"
LOG_NS = "urn:riv:informationsecurity:auditing:log:2"


# The national services are RIVTA interactions like the contracts the producer serves: described the same way.
NationalService = Interaction


CHECK_CONSENT = NationalService("CheckConsent", "2.0", "informationsecurity:authorization:consent", CONSENT_NS)
REGISTER_EXTENDED_CONSENT = NationalService("RegisterExtendedConsent", "2.0",
                                            "informationsecurity:authorization:consent", CONSENT_NS)
CHECK_BLOCKS = NationalService("CheckBlocks", "4.0", "informationsecurity:authorization:blocking", BLOCKING_NS)
# informationsecurity:auditing:log 2.0, not ehr:log 1.0: Inera no longer develops ehr:log and points new
# consumers to this domain (patient ids as IIType, so reserve numbers fit; TKB 2.0.8, 2024).
STORE_LOG = NationalService("StoreLog", "2.0", "informationsecurity:auditing:log", LOG_NS)

SERVICES: tuple[NationalService, ...] = (CHECK_CONSENT, REGISTER_EXTENDED_CONSENT, CHECK_BLOCKS, STORE_LOG)


def service_url(base_url: str, service: NationalService) -> str:
    """The endpoint of a service below a base URL that follows the platform's path pattern."""
    return base_url.rstrip("/") + service.url_path


def compile_schema(service: NationalService) -> etree.XMLSchema:
    """The project's Responder schema of a service (request and response elements), freshly compiled."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(service.responder_xsd), parser))


@cache
def schema(service: NationalService) -> etree.XMLSchema:
    """The shared compiled schema. A validator's error log is per object: a server in another thread (the
    stand-ins) compiles its own with `compile_schema`."""
    return compile_schema(service)
