"""The staff page as staff use it: headless Chromium (Debian's `chromium`) driven by Playwright, signing in through
the OpenID provider (tests/oidc/provider.mjs), against the UI served over HTTPS on loopback, producers over mTLS and
the national services' stand-ins. Chromium accepts exactly the dev server's key (an SPKI pin), nothing else
untrusted.

Under CI (CI=true) a missing browser or Playwright fails the test; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.consumer.world import HOUSING, MARTA, MUNICIPALITY, PER, REGION_SOURCE, SOURCE, TOLVAN
from tests.oidc.provider import STAFF

TABS = ["Diagnoser", "Läkemedel", "Vårdplan", "Funktionstillstånd & ADL", "Anteckningar", "Vaccinationer",
        "Vårdkontakter", "Uppmärksamhetsinformation"]
BUDGET_SECONDS = 60


# The page is the view layer: one store backend is enough, and the test changes its world (registers a consent,
# stops a producer), so it runs once.
@pytest.mark.parametrize("ui_store", ["sqlite"], indirect=True)
def test_staff_find_consent_emergency_blocks_and_failed_sources(browser, ui, world, tmp_path):
    from playwright.sync_api import expect

    started = time.monotonic()
    expect.set_options(timeout=15_000)
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="sv-SE")
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []  # script errors and CSP refusals
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    # our page's errors only (not the provider's), and not the 401 of asking /api/session whether anyone is signed in
    expected = "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" and msg.text != expected
            and msg.location.get("url", "").startswith(ui.url) else None)

    page.goto(ui.url + "/")
    expect(page).to_have_title(re.compile("Patientöversikt"))
    # not signed in: only the way to the hospital's login
    expect(page.locator("#search")).to_be_hidden()
    page.get_by_role("link", name="Logga in").click()
    expect(page).to_have_title(re.compile("Inloggning"))  # the provider's page
    page.get_by_label("Användarnamn").fill("anna")
    page.get_by_label("Lösenord").fill(STAFF["anna"]["password"])
    page.get_by_role("button", name="Logga in").click()
    expect(page.locator("#user-name")).to_have_text("Anna Andersson")
    expect(page.locator("#user-hsa")).to_have_text("SE2321000016-L001")
    expect(page.locator("#demo-banner")).to_be_hidden()
    assert page.locator("#employee").count() == 0  # no HSA-id field: the sign-in says who the user is
    # only Anna's own assignments
    options = page.get_by_label("Uppdrag").locator("option")
    expect(options).to_have_text([a["name"] for a in STAFF["anna"]["medarbetaruppdrag"]])
    page.get_by_label("Uppdrag").select_option(label="Akutmottagningen, Region Exempel")
    patient = page.get_by_label("Personnummer eller samordningsnummer")
    search = page.locator("#search-button")
    panel = page.get_by_role("tabpanel")  # the visible one

    # Tolvan consented for the emergency department: all eight kinds of information, each record dated and sourced
    patient.fill("19121212-1212")
    search.click()
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_count(len(TABS))
    for i, title in enumerate(TABS):
        expect(tabs.nth(i)).to_have_text(re.compile(rf"^{re.escape(title)} \(\d+\)$"))
        tabs.nth(i).click()
        expect(tabs.nth(i)).to_have_attribute("aria-selected", "true")
        rows = panel.locator("tbody tr[data-record]")
        expect(rows.first).to_be_visible()
        for row in rows.all():
            assert re.fullmatch(r"(19|20)\d\d-\d\d-\d\d", row.locator("td.date .day").inner_text()), title
            assert row.locator("td.unit").inner_text().strip(), title
            assert row.locator("td.source .hsa").inner_text() in (SOURCE, REGION_SOURCE), title
    tabs.first.click()
    expect(panel.locator("td.text", has_text="Misstänkt fallrisk <&> yrsel")).to_have_count(1)  # text, not markup
    page.keyboard.press("ArrowRight")
    expect(tabs.nth(1)).to_be_focused()
    expect(page.locator("#emergency-flag")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "1-overview.png"), full_page=True)

    # Märta, emergency access: the reason is required; the blocked unit stays hidden, only its care giver is named
    patient.fill(MARTA)
    page.get_by_role("checkbox", name="Nödåtkomst").check()
    expect(search).to_have_text("Öppna med nödåtkomst")
    search.click()
    expect(page.locator("#reason-error")).to_have_text("Ange skälet till nödåtkomst.")
    expect(page.locator("#result")).to_be_hidden()
    page.get_by_label("Skäl för nödåtkomst (krävs)").fill("Medvetslös patient, akut läkemedelsgenomgång")
    search.click()
    expect(page.locator("#emergency-flag")).to_be_visible()
    expect(page.locator("#emergency-flag")).to_have_text("NÖDÅTKOMST")
    blocked = page.locator("#notices [data-kind=blocked]")
    expect(blocked).to_have_count(1)
    expect(blocked).to_contain_text(f"Det finns spärrad information hos vårdgivare Exempelby kommun ({MUNICIPALITY})")
    expect(page.locator("#notices [data-kind=emergency]")).to_be_visible()
    assert HOUSING not in page.locator("#result").inner_text()
    expect(panel.locator("td.basis").first).to_have_text("nödåtkomst")
    page.screenshot(path=str(tmp_path / "2-emergency.png"), full_page=True)

    # Per: no consent; the notice and the button; after registering, the municipality's records appear
    page.get_by_role("checkbox", name="Nödåtkomst").uncheck()
    patient.fill(PER)
    search.click()
    expect(page.locator("#notices [data-kind=consent]")).to_be_visible()
    expect(panel.locator("tbody tr[data-record]")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "3-consent-needed.png"), full_page=True)
    page.get_by_role("button", name="Registrera samtycke").click()
    expect(page.locator("#status")).to_have_text("Samtycket är registrerat för vårdenheten.")
    expect(page.locator("#notices [data-kind=consent]")).to_have_count(0)
    expect(panel.locator("tbody tr[data-record]").first).to_be_visible()
    expect(panel.locator("td.unit .hsa").first).to_have_text(re.compile(r"^SE2120001231-"))
    expect(panel.locator("td.basis").first).to_have_text("samtycke")
    assert "Exempelby kommun" not in page.locator("#notices").inner_text()
    page.screenshot(path=str(tmp_path / "4-consent-registered.png"), full_page=True)

    # the region's producer goes away: its failure is told, the municipality is still shown
    world.region.__exit__(None, None, None)
    patient.fill(TOLVAN)
    search.click()
    failed = page.locator("#notices [data-kind=failed]")
    expect(failed).to_contain_text("Information kunde inte hämtas från: Region Exempel.")
    expect(panel.locator("tbody tr[data-record]").first).to_be_visible()
    page.get_by_text("Källor och status").click()
    expect(page.locator("#sources td.st-failed")).to_have_count(len(TABS))  # every information type of the region
    page.screenshot(path=str(tmp_path / "5-failed-source.png"), full_page=True)

    # signing out ends the session here and at the provider
    page.get_by_role("button", name="Logga ut").click()
    page.get_by_role("button", name=re.compile("sign me out", re.I)).click()
    expect(page.get_by_role("link", name="Logga in")).to_be_visible()
    expect(page.locator("#search")).to_be_hidden()
    page.get_by_role("link", name="Logga in").click()
    expect(page.get_by_label("Lösenord")).to_be_visible()  # the provider asks again

    context.close()
    assert problems == []
    assert time.monotonic() - started < BUDGET_SECONDS
