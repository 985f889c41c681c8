"""Clients for the national PDL services a consumer must use before and while its staff read NPÖ:
consent or emergency access (CheckConsent, RegisterExtendedConsent), blocks (CheckBlocks) and the access
log (StoreLog). Each takes an `httpx.AsyncClient` that the caller has configured with mutual TLS, timeouts
and `trust_env=False`, and raises `PdlServiceError` (`ServiceUnavailable` or `ServiceRefused`) whenever it
cannot give a sure answer: callers must then deny access (fail closed)."""

from adapter.consumer.pdl.actor import AccessingActor
from adapter.consumer.pdl.blocks import BlockRow, BlockStatus, InformationEntity, check_blocks
from adapter.consumer.pdl.consent import ConsentDecision, check_consent, register_consent
from adapter.consumer.pdl.log_service import AccessLogEntry, LogResource, new_log_id, store_logs
from adapter.consumer.pdl.soap_call import PdlServiceError, ServiceRefused, ServiceUnavailable

__all__ = [
    "AccessLogEntry",
    "AccessingActor",
    "BlockRow",
    "BlockStatus",
    "ConsentDecision",
    "InformationEntity",
    "LogResource",
    "PdlServiceError",
    "ServiceRefused",
    "ServiceUnavailable",
    "check_blocks",
    "check_consent",
    "new_log_id",
    "register_consent",
    "store_logs",
]
