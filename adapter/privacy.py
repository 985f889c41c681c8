"""Keeping personnummer out of messages and logs: identifiers that come from the network or from writers (resource
ids, HSA-ids, correlation ids) are shown only when they cannot hold one."""

from __future__ import annotations

import re

_DIGIT_RUN = re.compile(r"\d(?:[\d\-+.:_/ ]*\d)?")
# A run of _DIGIT_RUN's characters ten long at least: what ten digits need. Most text (and UUIDs) has none, and
# is passed without walking every run (a third of the cost of a correlation id's check).
_LONG_ENOUGH = re.compile(r"\d[\d\-+.:_/ ]{8,}\d")


def may_hold_personnummer(text: str) -> bool:
    """True when ten digits in a row, separators between them ignored, could be a personnummer or
    samordningsnummer (YYMMDDNNNN with a real month and day, or day + 60). Organisation numbers and the HSA-ids
    built on them (third and fourth digit 20 or more) are not taken for one."""
    if _LONG_ENOUGH.search(text) is None:
        return False
    for run in _DIGIT_RUN.findall(text):
        digits = re.sub(r"\D", "", run)
        for i in range(len(digits) - 9):
            month, day = int(digits[i + 2:i + 4]), int(digits[i + 4:i + 6])
            if 1 <= month <= 12 and (1 <= day <= 31 or 61 <= day <= 91):
                return True
    return False
