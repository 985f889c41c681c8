"""The platform's correlation id (`x-skltp-correlation-id`), carried through a request or an overview.

NTjP sets the header on every call it routes, so one id follows a call from the consumer through the platform to
the producer. The producer reads it on every call (and makes one when it is absent); the consumer makes one per
overview and sends it on every call it makes (adapter/rivta/client.py reads it from here). Log lines carry it
(adapter/logs.py), and the producer echoes it in its answer's header.

An id from the network is taken only when it cannot hold a personnummer: one that could is replaced by a new one.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

from adapter.privacy import may_hold_personnummer
from adapter.rivta import ids

HEADER = "x-skltp-correlation-id"

_current: ContextVar[str | None] = ContextVar("npo_correlation_id", default=None)
_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def new() -> str:
    """A random UUID that `accepted` takes: about 1.3 % of random UUIDs look as if they held a personnummer, and
    the next hop (a producer, the platform) would replace such an id and lose the thread through the logs."""
    while True:
        value = ids.uuid4()
        if not may_hold_personnummer(value):
            return value


def accepted(value: str | None) -> str | None:
    """`value` when it is usable as a correlation id: a UUID or another short token, in which no ten digits
    (separators between them ignored) could be a personnummer. The rule is privacy's, as for every identifier
    shown: a personnummer spread over a UUID's groups ("abcdefab-1912-1212-1212-…") is refused as one written
    "19121212-1212" is; about 1.3 % of random UUIDs from the network are replaced for it."""
    if value is None:
        return None
    value = value.strip()
    return value if _TOKEN.match(value) and not may_hold_personnummer(value) else None


def current() -> str | None:
    """The correlation id of the request or overview in hand, if any."""
    return _current.get()


class scope:  # lower case: used as the function it was, `with correlation.scope(value) as used:`
    """Within the block, `current()` is `value` (a new id when None). A class rather than a generator-based context
    manager: it is entered on every producer call."""

    __slots__ = ("value", "_token")

    def __init__(self, value: str | None = None) -> None:
        self.value = value

    def __enter__(self) -> str:
        value = self.value = self.value or new()
        self._token = _current.set(value)
        return value

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)
