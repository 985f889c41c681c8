"""Sending one Update call to the engagement index.

The caller owns the httpx.AsyncClient: its timeout, and for the platform its TLS context with the
adapter's function certificate (`verify=ssl_context`). Outcomes:
* UpdateResult OK/INFO: applied;
* UpdateResult ERROR: a logical error, resending the same call fails again (no blind resend);
* EiFault: a SOAP fault (see `EiFault.rejected` for the national EI's validation faults);
* EiUnavailable: no usable answer (refused, dropped, timed out, HTTP error, unreadable) - retry with backoff.
The transport, the size cap and the fault reading are the one RIVTA client's (adapter/rivta/client.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from adapter.ei.messages import (
    SOAP_ACTION,
    EiFault,
    EiUnavailable,
    EngagementTransaction,
    UpdateResult,
    build_update,
    ei_fault,
    update_result,
)
from adapter.rivta import client as rivta

__all__ = ["EiFault", "EiUnavailable", "send_update"]

log = logging.getLogger("adapter.ei")
MAX_ANSWER_BYTES = 1_000_000  # an UpdateResponse is a few hundred bytes


async def send_update(client: httpx.AsyncClient, url: str, ei_logical_address: str,
                      transactions: Sequence[EngagementTransaction]) -> UpdateResult:
    """POST one Update; raises InvalidBatch (ValueError) before sending if the batch breaks a rule."""
    request = build_update(ei_logical_address, transactions)
    try:
        reply = await rivta.call(client, url, request, soap_action=SOAP_ACTION, max_bytes=MAX_ANSWER_BYTES)
    except rivta.Fault as fault:
        exc = ei_fault(fault)
        log.warning("EI Update of %d transactions: SOAP fault %s", len(transactions), exc.code or "(no code)")
        raise exc from None
    except rivta.Timeout as exc:
        raise EiUnavailable(f"timeout ({exc.cause})", exc.status) from None
    except rivta.Unreachable as exc:
        raise EiUnavailable(f"transport error ({exc.detail or exc.cause})", exc.status) from None
    except rivta.TooLarge as exc:
        raise EiUnavailable(f"answer {exc.reason}", exc.status) from None
    except rivta.NotSoap as exc:  # RIVTA answers faults with HTTP 500; anything else but 200 is the HTTP layer
        raise EiUnavailable(f"unreadable answer: {exc.reason} (HTTP {exc.status})", exc.status) from None
    except rivta.RivtaCallError as exc:  # HttpStatus
        raise EiUnavailable(exc.reason, exc.status) from None
    try:
        result = update_result(reply.answer)
    except EiUnavailable as exc:
        raise EiUnavailable(f"{exc.reason} (HTTP {reply.exchange.status})", reply.exchange.status) from None
    log.info("EI Update of %d transactions: %s", len(transactions), result.code.value)
    return result
