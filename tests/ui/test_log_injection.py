"""An outsider writes into the staff page's log: anyone may start a sign-in (GET /login) and then come back to the
callback with an `error` of their own making. The provider's error code went into a warning line as it came, so a
newline forged whole log lines in the text format and a personnummer landed in the log. Over real HTTPS, the
provider real (tests/oidc/provider.mjs), the UI as served."""

from __future__ import annotations

import logging

import pytest

from adapter.logs import JsonFormatter
from tests.ui.conftest import browser_like_client

FORGED = "access_denied\n2026-03-02 08:15:02,114 INFO adapter.ui staff signed in (session admin, provider) 191212121212"


@pytest.mark.parametrize("ui_store", ["sqlite"], indirect=True)
@pytest.mark.parametrize("error", [FORGED, "x" * 8000])
def test_an_outsiders_error_at_the_callback_writes_no_line_of_its_own(ui, oidc, caplog, error):
    with browser_like_client(oidc, ui.url) as outsider, caplog.at_level(logging.INFO):
        started = outsider.get("/login")
        assert started.status_code in (302, 303, 307)
        answer = outsider.get("/auth/callback", params={"error": error, "state": "whatever"})
        assert answer.status_code == 403
    lines = [r for r in caplog.records if r.name.startswith("adapter")]
    refused = [r for r in lines if "sign-in refused" in r.getMessage()]
    assert refused, [r.getMessage() for r in lines]
    for record in lines:
        message = record.getMessage()
        assert "\n" not in message and "191212121212" not in message and len(message) < 300, message
        assert "\n" not in JsonFormatter().format(record)
    assert refused[0].getMessage() == "sign-in refused: the provider refused: an unregistered error code"
