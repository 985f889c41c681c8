"""The adapter's own correlation ids pass the check every hop applies to ids from the network."""

from __future__ import annotations

import pytest

from adapter import correlation

# Seen in CI: a random UUID whose first digits read 83 10 67… (a samordningsnummer's month and day + 60), so the
# adapter's own id was replaced by the next hop as if it could hold a personnummer.
LOOKS_LIKE_ONE = "68310674-9728-4030-96ee-13e1bff6eec9"


def test_an_id_the_next_hop_would_refuse_is_never_made(monkeypatch):
    made = iter([LOOKS_LIKE_ONE, "0a0b0c0d-0e0f-4a0b-8c0d-0e0f0a0b0c0d"])
    monkeypatch.setattr(correlation.ids, "uuid4", lambda: next(made))
    assert correlation.accepted(LOOKS_LIKE_ONE) is None
    assert correlation.new() == "0a0b0c0d-0e0f-4a0b-8c0d-0e0f0a0b0c0d"


def test_every_id_made_is_accepted():
    assert all(correlation.accepted(value) == value for value in (correlation.new() for _ in range(20_000)))


# The attack review: a personnummer spread over a UUID's middle groups was taken (only the first two groups, the
# last one and 10-digit runs were checked) and logged at info with every line of the request.
@pytest.mark.parametrize("value", ["abcdefab-1912-1212-1212-abcdefabcdef", "abcd1912-1212-1212-abcd-abcdefabcdef"])
def test_a_personnummer_spread_over_a_uuids_groups_is_not_taken(value):
    assert correlation.accepted(value) is None
