"""Sending one Update call to the engagement index.

The caller owns the httpx.AsyncClient: its timeout, and for the platform its TLS context with the
adapter's function certificate (`verify=ssl_context`). Outcomes:
* UpdateResult OK/INFO: applied;
* UpdateResult ERROR: a logical error, resending the same call fails again (no blind resend);
* EiFault: a SOAP fault (see `EiFault.rejected` for the national EI's validation faults);
* EiUnavailable: no usable answer (refused, dropped, timed out, HTTP error, unreadable) - retry with backoff.
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
    parse_update_response,
)

__all__ = ["EiFault", "EiUnavailable", "send_update"]

log = logging.getLogger("adapter.ei")
CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_ANSWER_BYTES = 1_000_000  # an UpdateResponse is a few hundred bytes


async def send_update(client: httpx.AsyncClient, url: str, ei_logical_address: str,
                      transactions: Sequence[EngagementTransaction]) -> UpdateResult:
    """POST one Update; raises InvalidBatch (ValueError) before sending if the batch breaks a rule."""
    request = build_update(ei_logical_address, transactions)
    headers = {"Content-Type": CONTENT_TYPE, "SOAPAction": f'"{SOAP_ACTION}"'}
    try:
        async with client.stream("POST", url, content=request, headers=headers) as response:
            status = response.status_code
            data = await _read_capped(response)
    except httpx.TimeoutException as exc:
        raise EiUnavailable(f"timeout ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise EiUnavailable(f"transport error ({type(exc).__name__}: {exc})") from None

    # RIVTA answers faults with HTTP 500; anything else but 200 is the HTTP layer failing.
    if status not in (200, 500):
        raise EiUnavailable(f"HTTP {status}", status)
    try:
        result = parse_update_response(data)
    except EiUnavailable as exc:
        raise EiUnavailable(f"{exc.reason} (HTTP {status})", status) from None
    except EiFault as fault:
        log.warning("EI Update of %d transactions: SOAP fault %s", len(transactions), fault.code or "(no code)")
        raise
    log.info("EI Update of %d transactions: %s", len(transactions), result.code.value)
    return result


async def _read_capped(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise EiUnavailable(f"answer larger than {MAX_ANSWER_BYTES} bytes", response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)
