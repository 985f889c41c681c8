"""The PDL decision for one overview, as a pure function (sammanhållen journalföring, consumer side).

* The user's own care unit: always shown.
* Other units of the user's own care giver: shown unless the patient blocked them (inner block).
* Other care givers: shown only with a valid consent for the user's unit (or the user), or with emergency
  access and a reason; never when blocked (outer block). Blocked information is never shown, not even in an
  emergency: the user is told that blocked information exists and at which care giver, nothing more.
* When the block status is unknown (the blocking service cannot be reached, or it answered
  VALIDATIONERROR), everything but the user's own unit stays hidden (fail closed), and the user is told why.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Basis(StrEnum):
    OWN = "own"
    CONSENT = "consent"
    EMERGENCY = "emergency"


class Hidden(StrEnum):
    NO_CONSENT = "no-consent"
    BLOCKED = "blocked"
    BLOCK_STATUS_UNKNOWN = "block-status-unknown"


@dataclass(frozen=True)
class UserContext:
    employee_hsa_id: str
    care_unit_hsa_id: str
    care_giver_hsa_id: str
    purpose: str = "Vård och behandling"
    name: str | None = None


@dataclass(frozen=True)
class Group:
    """Information from one care giver and care unit (the unit PDL decisions and blocks apply to); medication
    is its own group, because a block may leave medication out (information type "lak")."""

    care_giver: str
    care_unit: str
    information_type: str | None = None


@dataclass(frozen=True)
class Decision:
    group: Group
    shown: bool
    basis: Basis | None = None
    hidden: Hidden | None = None


def is_own_care_giver(user: UserContext, g: Group) -> bool:
    return g.care_giver.upper() == user.care_giver_hsa_id.upper()


def is_own_unit(user: UserContext, g: Group) -> bool:
    return is_own_care_giver(user, g) and g.care_unit.upper() == user.care_unit_hsa_id.upper()


def decide(user: UserContext, groups: list[Group], *, consent: bool, emergency_reason: str | None,
           blocks: dict[Group, str] | None) -> list[Decision]:
    """`blocks` maps each group to the blocking service's row status (OK | BLOCKED | VALIDATIONERROR);
    None when the service could not be reached."""
    out = []
    for g in groups:
        own_giver = is_own_care_giver(user, g)
        if is_own_unit(user, g):
            out.append(Decision(g, True, Basis.OWN))
            continue
        status = None if blocks is None else blocks.get(g)
        if status == "BLOCKED":
            out.append(Decision(g, False, hidden=Hidden.BLOCKED))
        elif status != "OK":
            out.append(Decision(g, False, hidden=Hidden.BLOCK_STATUS_UNKNOWN))
        elif own_giver:
            out.append(Decision(g, True, Basis.OWN))
        elif consent:
            out.append(Decision(g, True, Basis.CONSENT))
        elif emergency_reason:
            out.append(Decision(g, True, Basis.EMERGENCY))
        else:
            out.append(Decision(g, False, hidden=Hidden.NO_CONSENT))
    return out
