"""Partial answers (TKB GetCareDocumentation 3.0 "Partiell datahämtning"): at most N records per answer, the
newest first, and a `hasMore` reference that the next request's `hasMoreReference` continues from.

A reference is a Fernet token (authenticated encryption, with its creation time): it holds the position
after the last record sent (a day and a row number) and a digest of the request's other parameters, so
nothing in it is readable and nothing can be forged. It is accepted only with the same contract, logical
address and parameters it was given for (TKB: "övriga anropsparametrar ska vara identiska"), for
`ttl_seconds` (TKB: at least one hour). Without a configured key a random one is made per process: references
then do not survive a restart, and replicas answering the same platform must share NPO_PAGING_KEY.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken

from adapter.store.records import RecordQuery

log = logging.getLogger("adapter.producer")
DEFAULT_TTL_SECONDS = 24 * 3600
INVALID = "hasMoreReference is not valid for this request (unknown, expired or given with " \
          "other parameters than the call that returned it); ask again without it"


@dataclass(frozen=True)
class Position:
    day: str
    pk: int


class Pager:
    def __init__(self, limit: int, key: str | None = None, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        if limit < 1:
            raise ValueError("a partial answer holds at least one record")
        self.limit = limit
        self.ttl_seconds = ttl_seconds
        self._fernet = Fernet(key.encode("ascii") if key else Fernet.generate_key())

    @staticmethod
    def digest(contract_key: str, logical_address: str, q: RecordQuery) -> str:
        """The request's parameters other than hasMoreReference (and the caller's hidden care units)."""
        params = [contract_key, logical_address, q.patient_id, q.patient_type, q.period_start, q.period_end,
                  sorted(q.care_units), sorted(q.care_givers), sorted(q.care_contacts), q.chain_id, q.status,
                  sorted(q.hidden_care_units)]
        return hashlib.sha256(json.dumps(params).encode("utf-8")).hexdigest()

    def reference(self, digest: str, after: Position) -> str:
        payload = json.dumps({"q": digest, "d": after.day, "p": after.pk}, separators=(",", ":"))
        return self._fernet.encrypt(payload.encode("utf-8")).decode("ascii")

    def position(self, reference: str, digest: str) -> Position | None:
        """Where `reference` continues, or None when it is not one of ours for these parameters."""
        try:
            raw = self._fernet.decrypt(reference.encode("ascii"), ttl=self.ttl_seconds)
            data = json.loads(raw)
            if data["q"] != digest:
                return None
            day, pk = data["d"], data["p"]
        except (InvalidToken, UnicodeError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(day, str) or not isinstance(pk, int) or isinstance(pk, bool):
            return None
        return Position(day, pk)


def new_key() -> str:
    """A key for NPO_PAGING_KEY."""
    return Fernet.generate_key().decode("ascii")


__all__ = ["INVALID", "Pager", "Position", "new_key"]
