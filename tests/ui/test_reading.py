"""Reading an overview as a clinician (issue 14, items 3, 4, 5, 13): whole notes and attachments, what is hidden and
why (blocked information never told by kind), names instead of HSA-ids, and sources shown as they answer while a hung
producer is marked pending until the deadline. Over the real API (HTTPS, signed in through the provider) and in
Chromium; producers over mTLS, the national services' stand-ins seeded from adapter/stubs/seed.dev.toml."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import pytest

from adapter.consumer.fetch import FetchSettings, Source
from adapter.consumer.pdl import access_log
from adapter.gateway.tls import TlsContexts
from adapter.rivta.contracts import INFORMATION_TYPES
from tests.consumer.producers import (
    LONG_NOTE,
    NOTES_SOURCE,
    PNG_1X1,
    SlowProducer,
    notes_resources,
    store_of,
)
from tests.consumer.world import EMERGENCY_DEPARTMENT, HOME, HOUSING, MARTA, MUNICIPALITY, PER, TOLVAN
from tests.gateway.conftest import TlsServer, tls_files
from tests.oidc.provider import sign_in
from tests.samples import condition
from tests.ui.conftest import browser_like_client, browser_sign_in

REASON = "Medvetslös patient, akut läkemedelsgenomgång"
DEADLINE = 3.0


def who(patient: str, **extra) -> dict:
    return {"care_unit": EMERGENCY_DEPARTMENT, "patient": patient, **extra}


@pytest.fixture(scope="module")
def journal2(tmp_path_factory, pki):
    """The municipality's second journal system: Tolvan's notes (a long one, a picture, a PDF, an https link, a plain
    http reference), Märta's diagnosis at the blocked housing unit only, Per's diagnosis at home care only."""
    folder = tmp_path_factory.mktemp("journal2")
    resources = [*notes_resources(),
                 condition("m-housing", patient="pat-2", staff=1, source=NOTES_SOURCE, identifier="m-dia"),
                 condition("p-home", patient="pat-5", staff=0, source=NOTES_SOURCE, identifier="p-dia")]
    with TlsServer(store_of(folder, "journal2", resources), TlsContexts(tls_files(pki))) as srv:
        yield Source("Exempelby journal 2", srv.url, NOTES_SOURCE)


@pytest.fixture(scope="module")
def hung():
    with SlowProducer(delay=120) as slow:  # accepts connections, never answers within the deadline
        yield Source("Vårdcentral Hängd", slow.url, "SE0000000000-HUNG")


@pytest.fixture(scope="module")
def reading(world, journal2, ui_store, serve_ui, oidc):
    config = replace(world.config, sources=(journal2,), fetch=FetchSettings(per_source_timeout=5, deadline=8))
    with serve_ui(config, ui_store) as srv, browser_like_client(oidc, srv.url) as client:
        sign_in(client, srv.url, "anna")
        yield client


@pytest.fixture(scope="module")
def streaming(world, journal2, hung, ui_store, serve_ui, oidc):
    config = replace(world.config, sources=(journal2, hung),
                     fetch=FetchSettings(per_source_timeout=DEADLINE, deadline=DEADLINE))
    with serve_ui(config, ui_store) as srv, browser_like_client(oidc, srv.url) as client:
        sign_in(client, srv.url, "anna")
        yield srv, client


def tab(answer: dict, contract: str) -> dict:
    return next(t for t in answer["tabs"] if t["contract"] == contract)


def test_a_note_is_there_whole_with_its_attachments_author_profession_time_and_names(reading):
    ov = reading.post("/api/overview", json=who(TOLVAN)).json()
    notes = {r["document_id"]: r for r in tab(ov, "GetCareDocumentation:3")["records"]}
    long = next(r for r in notes.values() if "SLUTET AV ANTECKNINGEN" in r["full_text"])
    assert len(long["text"]) <= 160 and long["text"].endswith("…")
    assert long["full_text"] == "Hembesök: " + LONG_NOTE.strip()  # whole, line breaks kept, as text
    assert "<script>alert('x')</script>" in long["full_text"]
    assert (long["author"], long["profession"], long["date"], long["time"]) == ("Åsa Öberg", "Sjuksköterska",
                                                                                "2024-05-02", "14:35")
    assert long["author_time"] == "2024-05-02 14:35"
    assert (long["source"], long["source_name"]) == (NOTES_SOURCE, "Exempelby journal 2")
    assert (long["care_giver"], long["care_giver_name"]) == (MUNICIPALITY, "Exempelby kommun")
    assert (long["care_unit"], long["unit"]) == (HOME, "Hemtjänsten Ängsvägen")
    kinds = {a["kind"]: a for r in notes.values() for a in r["attachments"]}
    assert kinds["image"]["data"] == PNG_1X1 and kinds["image"]["media_type"] == "image/png"
    assert kinds["file"]["media_type"] == "application/pdf" and kinds["file"]["name"].endswith(".pdf")
    assert kinds["link"]["url"] == "https://dokument.example.se/vardplan/1"
    assert kinds["reference"]["url"] == "http://intranat.example/x"  # shown as text, never a link
    sources = [s for s in ov["sources"] if s["contract"] == "GetCareDocumentation:3"]
    assert [(s["source"], s["address"], s["status"], s["shown"], s["text"]) for s in sources] == [
        ("Exempelby journal 2", NOTES_SOURCE, "answered", 5, "5 visas")]


def test_no_consent_is_said_in_the_tab_it_concerns_with_what_to_do(reading):
    ov = reading.post("/api/overview", json=who(PER)).json()  # Per's consent for the department expired
    assert ov["consent_needed"] and all(not t["records"] for t in ov["tabs"])
    diagnoses = tab(ov, "GetDiagnosis:2")
    assert [n["kind"] for n in diagnoses["notices"]] == ["consent"]
    assert "samtycke" in diagnoses["notices"][0]["text"] and "nödåtkomst" in diagnoses["notices"][0]["text"]
    assert diagnoses["empty_text"] == "Inga uppgifter att visa."
    for other in ov["tabs"]:
        if other["contract"] != "GetDiagnosis:2":
            assert other["notices"] == [] and other["empty_text"].startswith("Inga uppgifter om ")
    rows = {s["contract"]: s for s in ov["sources"]}
    assert rows["GetDiagnosis:2"]["consent_needed"] and rows["GetDiagnosis:2"]["text"] == \
        "inget att visa; uppgifter kräver samtycke"
    assert not rows["GetCarePlans:2"]["consent_needed"]


def _without_its_name(t: dict) -> dict:
    return {k: v for k, v in t.items() if k not in ("contract", "title")} | {
        "empty_text": t["empty_text"].replace(t["title"].lower(), "")}


def test_blocked_information_looks_the_same_in_every_tab_and_in_the_sources_table(reading):
    """Märta's only information here is a diagnosis at the blocked housing unit: the Diagnoser tab must read exactly
    as the tabs of kinds that do not exist at all, and so must its row in the sources table."""
    resp = reading.post("/api/overview", json=who(MARTA, emergency_reason=REASON))
    ov = resp.json()
    assert ov["blocked_care_givers"] == [MUNICIPALITY] and HOUSING not in resp.text
    notice = next(n["text"] for n in ov["notices"] if n["kind"] == "blocked")
    assert notice == f"Det finns spärrad information hos vårdgivare Exempelby kommun ({MUNICIPALITY})."
    tabs = [_without_its_name(t) for t in ov["tabs"]]
    assert all(t == tabs[0] for t in tabs), tabs
    assert [n["kind"] for n in ov["tabs"][0]["notices"]] == ["blocked"]
    rows = [{k: v for k, v in s.items() if k not in ("contract", "information_type")} for s in ov["sources"]]
    assert all(r == rows[0] for r in rows) and rows[0]["text"] == "inget att visa"


def test_the_stream_shows_the_answering_source_at_once_and_the_hung_one_pending_then_failed(streaming, ui_store):
    srv, client = streaming
    before = access_log.count(ui_store)
    lines = []
    started = time.monotonic()
    with client.stream("POST", "/api/overview/stream", json=who(TOLVAN)) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/x-ndjson")
        assert resp.headers["cache-control"] == "no-store"
        for line in resp.iter_lines():
            if line:
                lines.append((time.monotonic() - started, json.loads(line)))
    first, answered, last = lines[0][1], lines[1], lines[-1]
    assert not first["complete"] and first["pending_sources"] == ["Exempelby journal 2", "Vårdcentral Hängd"]
    assert all(not t["records"] for t in first["tabs"])
    assert answered[0] < 1.0, f"the answering source came after {answered[0]:.2f} s"
    assert answered[1]["pending_sources"] == ["Vårdcentral Hängd"] and not answered[1]["complete"]
    assert len(tab(answered[1], "GetCareDocumentation:3")["records"]) == 5
    assert {s["status"] for s in answered[1]["sources"] if s["source"] == "Vårdcentral Hängd"} == {"pending"}
    assert all(any(n["kind"] == "pending" for n in t["notices"]) for t in answered[1]["tabs"])
    assert last[1]["complete"] and last[0] >= DEADLINE - 0.2 and len(lines) == 3
    hung = [s for s in last[1]["sources"] if s["source"] == "Vårdcentral Hängd"]
    assert {s["status"] for s in hung} == {"failed"} and all("deadline" in s["reason"] for s in hung)
    # the access log: exactly what was shown, once, logged before it was shown
    entries = access_log.entries(ui_store)[before:]
    assert [(e["information_care_provider_id"], e["information_care_unit_id"], e["resource_types"], e["basis"])
            for e in entries] == [(MUNICIPALITY, HOME, ["GetCareDocumentation:3"], "consent")]


def test_the_stream_needs_the_session_and_its_csrf_token(streaming, oidc):
    srv, _ = streaming
    with browser_like_client(oidc, srv.url) as stranger:
        assert stranger.post("/api/overview/stream", json=who(TOLVAN)).status_code == 401
    with browser_like_client(oidc, srv.url) as client:
        sign_in(client, srv.url, "anna")
        client.headers.pop("X-CSRF-Token", None)
        assert client.post("/api/overview/stream", json=who(TOLVAN)).status_code == 403


# -- in the browser ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ui_store", ["sqlite"], indirect=True)
def test_a_clinician_reads_as_sources_answer_opens_a_note_whole_and_sees_why_tabs_are_empty(browser, streaming,
                                                                                             ui_store, tmp_path):
    from playwright.sync_api import expect

    srv, _ = streaming
    expect.set_options(timeout=15_000)
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="sv-SE", accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    expected = "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" and msg.text != expected
            and msg.location.get("url", "").startswith(srv.url) else None)
    browser_sign_in(page, srv.url)
    page.get_by_label("Uppdrag").select_option(label="Akutmottagningen, Region Exempel")
    patient = page.get_by_label("Personnummer eller samordningsnummer")
    search = page.locator("#search-button")
    status = page.locator("#status")
    hung_rows = page.locator('#sources tr[data-source="Vårdcentral Hängd"] td:nth-child(3)')

    # 13: the answering source within a second, the hung one marked pending, then failed at the deadline
    patient.fill(TOLVAN)
    search.click()
    started = time.monotonic()
    page.get_by_role("tab", name=re.compile(r"^Anteckningar \(5\)$")).wait_for(timeout=5_000)
    shown_after = time.monotonic() - started
    assert shown_after < 1.0, f"the answering source was shown after {shown_after:.2f} s"
    expect(status).to_contain_text("Väntar på svar från: Vårdcentral Hängd")
    expect(hung_rows).to_have_text(["väntar på svar"] * len(INFORMATION_TYPES))
    page.screenshot(path=str(tmp_path / "1-pending.png"), full_page=True)
    page.get_by_role("tab", name=re.compile("^Anteckningar")).click()
    panel = page.get_by_role("tabpanel")
    expect(panel.locator("[data-kind=pending]")).to_have_text("Väntar på svar från: Vårdcentral Hängd.")
    # open the long note while the hung source is still pending: it stays open when the overview grows
    row = panel.locator("tbody tr[data-record]", has_text="Hembesök")
    row.get_by_role("button", name="Visa hela").click()
    expect(status).to_have_text("Översikten är hämtad.", timeout=DEADLINE * 1000 + 5_000)
    expect(hung_rows).to_have_text(["misslyckades"] * len(INFORMATION_TYPES))
    expect(page.locator("#notices [data-kind=failed]")).to_contain_text("Vårdcentral Hängd")

    # 3: the whole note, as text (its <script> shown, never run), and the attachments
    detail = panel.locator("tr.detail:not([hidden])")
    expect(detail).to_have_count(1)
    expect(detail.locator(".full-text")).to_contain_text("SLUTET AV ANTECKNINGEN")
    expect(detail.locator(".full-text")).to_contain_text("<script>alert('x')</script> ska stå som text.")
    assert detail.locator("script").count() == 0 and dialogs == []
    # 5: names first, HSA-ids second; author, profession and time
    expect(row.locator("td.source")).to_have_text(f"Exempelby journal 2{NOTES_SOURCE}")
    expect(row.locator("td.source .hsa")).to_have_text(NOTES_SOURCE)
    expect(row.locator("td.unit")).to_have_text(f"Hemtjänsten Ängsvägen{HOME}")
    expect(row.locator(".who")).to_have_text("Åsa Öberg, Sjuksköterska")
    expect(row.locator("td.date")).to_have_text("2024-05-0214:35")
    expect(detail.locator("dd").first).to_have_text("Åsa Öberg, Sjuksköterska, 2024-05-02 14:35")
    expect(detail).to_contain_text(f"Exempelby kommun ({MUNICIPALITY})")
    for title in ("Foto av sår", "Remissvar", "Vårdplan från regionen", "Gammal länk"):
        panel.locator("tbody tr[data-record]", has_text=title).get_by_role("button", name="Visa hela").click()
    image = panel.locator("tr.detail img")
    expect(image).to_have_count(1)
    assert image.get_attribute("src") == f"data:image/png;base64,{PNG_1X1}"
    assert image.evaluate("img => img.complete && img.naturalWidth") == 1  # the CSP let it load
    with page.expect_download() as download:
        panel.locator("tr.detail a[download]").click()
    assert download.value.suggested_filename.endswith(".pdf")
    assert open(download.value.path(), "rb").read().startswith(b"%PDF-1.4")
    link = panel.locator('tr.detail a[href="https://dokument.example.se/vardplan/1"]')
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    assert panel.locator('a[href^="http://"]').count() == 0
    expect(panel.locator("tr.detail [data-kind=reference]")).to_contain_text("http://intranat.example/x")
    page.screenshot(path=str(tmp_path / "2-note-opened.png"), full_page=True)

    # 4: no consent is said in the tab it concerns
    patient.fill(PER)
    search.click()
    expect(status).to_have_text("Översikten är hämtad.", timeout=DEADLINE * 1000 + 5_000)
    page.get_by_role("tab", name=re.compile("^Diagnoser")).click()
    expect(panel.locator("[data-kind=consent]")).to_contain_text("patienten har inte samtyckt")
    page.get_by_role("tab", name=re.compile("^Vårdplan")).click()
    expect(panel.locator("[data-kind=consent]")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "3-no-consent.png"), full_page=True)

    # 4: blocked information reads the same in every tab (Märta's is a diagnosis at the blocked unit)
    patient.fill(MARTA)
    page.get_by_role("checkbox", name="Nödåtkomst").check()
    page.get_by_label("Skäl för nödåtkomst (krävs)").fill(REASON)
    search.click()
    expect(status).to_have_text("Översikten är hämtad.", timeout=DEADLINE * 1000 + 5_000)
    expect(page.locator("#notices [data-kind=blocked]")).to_have_text(
        f"Spärr:Det finns spärrad information hos vårdgivare Exempelby kommun ({MUNICIPALITY}).")
    texts = []
    for t in page.get_by_role("tab").all():
        t.click()
        title = t.inner_text().split(" (")[0]
        texts.append(panel.inner_text().replace(title.lower(), ""))
    assert len(set(texts)) == 1, texts
    assert "Patienten har spärrat information hos Exempelby kommun" in texts[0]
    page.get_by_text("Källor och status").click()
    journal_rows = page.locator('#sources tr[data-source="Exempelby journal 2"] td:nth-child(3)')
    expect(journal_rows).to_have_text(["inget att visa"] * len(INFORMATION_TYPES))
    assert HOUSING not in page.content()
    page.screenshot(path=str(tmp_path / "4-blocked.png"), full_page=True)

    context.close()
    assert problems == []
