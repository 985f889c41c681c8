"use strict";
// The staff page: everything from the API is inserted as text (textContent / append of strings), never as markup.
(function () {
  const byId = (id) => document.getElementById(id);
  const form = byId("search");
  const fields = {
    assignment: byId("assignment"), patient: byId("patient"),
    emergency: byId("emergency"), reason: byId("reason"),
  };
  // a word before each notice, so its kind is not told by colour alone (the emergency text names itself)
  const NOTICE_LABEL = {
    blocked: "Spärr:", consent: "Samtycke krävs:", emergency: "", failed: "Ofullständig översikt:",
    service: "Tjänst otillgänglig:", info: "",
  };
  const STATUS_TEXT = { data: "uppgifter", none: "inga uppgifter", failed: "misslyckades" };
  let shownPatient = null;
  let csrf = null;  // the session's CSRF token, sent with every call

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  }

  function say(text) { byId("status").textContent = text; }

  function showError(text) {
    const box = byId("error");
    box.textContent = text;
    box.hidden = !text;
  }

  function fieldError(name, text) {
    const input = fields[name];
    const msg = byId(name + "-error");
    msg.textContent = text || "";
    msg.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    return !text;
  }

  function patientId() { return fields.patient.value.replace(/[\s-]/g, ""); }

  function formatPatient(id) { return id.slice(0, 8) + "-" + id.slice(8); }

  function validate(needReason) {
    let ok = fieldError("patient", /^\d{12}$/.test(patientId()) ? "" : "Ange 12 siffror: ÅÅÅÅMMDDNNNN.");
    if (needReason) ok = fieldError("reason", fields.reason.value.trim() ? "" : "Ange skälet till nödåtkomst.") && ok;
    else fieldError("reason", "");
    if (!fields.assignment.value) { showError("Välj ett medarbetaruppdrag."); ok = false; }
    return ok;
  }

  function who() {
    return { care_unit: fields.assignment.value, patient: patientId() };
  }

  async function call(method, path, body) {
    const headers = body ? { "Content-Type": "application/json" } : {};
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const response = await fetch(path, {
      method, headers,
      body: body ? JSON.stringify(body) : undefined, credentials: "same-origin", cache: "no-store",
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) {
      const detail = data && typeof data.detail === "string" ? data.detail : "Okänt fel (HTTP " + response.status + ").";
      if (response.status === 401) signedOut("Sessionen har gått ut. Logga in igen.");
      const error = new Error(detail);
      error.status = response.status;
      error.fields = (data && Array.isArray(data.errors)) ? data.errors : [];
      throw error;
    }
    return data;
  }

  function busy(on, text) {
    for (const b of document.querySelectorAll("button")) b.disabled = on;
    byId("result").setAttribute("aria-busy", on ? "true" : "false");
    say(on ? text : "");
  }

  function reportFailure(err) {
    let shown = false;
    for (const f of err.fields || []) {
      const name = f.field === "emergency_reason" ? "reason" : f.field;
      if (byId(name + "-error")) { fieldError(name, f.message); shown = true; }
    }
    showError(shown && err.fields.length === 1 ? "" : err.message);
  }

  function clearResult() {
    byId("result").hidden = true;
    byId("tablist").replaceChildren();
    byId("panels").replaceChildren();
    byId("notices").replaceChildren();
    byId("sources").replaceChildren();
    shownPatient = null;
  }

  async function search() {
    const emergency = fields.emergency.checked;
    if (!validate(emergency)) return;
    showError("");
    const body = who();
    if (emergency) body.emergency_reason = fields.reason.value.trim();
    busy(true, "Hämtar översikten från alla källor…");
    try {
      const overview = await call("POST", "/api/overview", body);
      render(body.patient, overview);
      say("Översikten är hämtad.");
    } catch (err) {
      clearResult();
      reportFailure(err);
      say("");
    } finally {
      busy(false, "");
    }
  }

  async function registerConsent() {
    if (!validate(false)) return;
    showError("");
    busy(true, "Registrerar samtycke…");
    try {
      await call("POST", "/api/consent", who());
    } catch (err) {
      busy(false, "");
      reportFailure(err);
      return;
    }
    busy(false, "");
    setEmergency(false);
    await search();
    say("Samtycket är registrerat för vårdenheten.");
  }

  function setEmergency(on) {
    fields.emergency.checked = on;
    byId("reason-row").hidden = !on;
    fields.reason.required = on;
    const button = byId("search-button");
    button.textContent = on ? "Öppna med nödåtkomst" : "Sök";
    button.classList.toggle("danger", on);
    if (!on) fieldError("reason", "");
  }

  function render(patient, ov) {
    clearResult();
    shownPatient = patient;
    const assignment = fields.assignment.options[fields.assignment.selectedIndex];
    byId("result-title").textContent = "Patient " + formatPatient(patient) + " – " + (assignment ? assignment.text : "");
    byId("emergency-flag").hidden = !ov.emergency;

    const notices = byId("notices");
    for (const n of ov.notices) {
      const label = NOTICE_LABEL[n.kind] || "";
      const item = el("li", { class: "notice notice-" + n.kind, "data-kind": n.kind });
      if (label) item.append(el("strong", { text: label }));
      item.append(n.text);
      notices.append(item);
    }
    byId("consent-actions").hidden = !ov.consent_needed || ov.emergency;

    const tablist = byId("tablist");
    const panels = byId("panels");
    ov.tabs.forEach((tab, i) => {
      const tabId = "tab-" + tab.contract.replace(":", "-");
      const panelId = "panel-" + tab.contract.replace(":", "-");
      const button = el("button", {
        type: "button", role: "tab", id: tabId, "aria-controls": panelId,
        "aria-selected": i === 0 ? "true" : "false", tabindex: i === 0 ? "0" : "-1",
      }, tab.title + " (" + tab.records.length + ")");
      button.addEventListener("click", () => select(i));
      button.addEventListener("keydown", (e) => {
        const n = ov.tabs.length;
        if (e.key === "ArrowRight") { e.preventDefault(); select((i + 1) % n, true); }
        if (e.key === "ArrowLeft") { e.preventDefault(); select((i - 1 + n) % n, true); }
        if (e.key === "Home") { e.preventDefault(); select(0, true); }
        if (e.key === "End") { e.preventDefault(); select(n - 1, true); }
      });
      tablist.append(button);
      const panel = el("div", { role: "tabpanel", id: panelId, "aria-labelledby": tabId, tabindex: "0" });
      panel.hidden = i !== 0;
      panel.append(records(tab));
      panels.append(panel);
    });

    const sources = byId("sources");
    for (const s of ov.sources) {
      sources.append(el("tr", {},
        el("td", { text: s.source }), el("td", { text: s.information_type }),
        el("td", { class: "st-" + s.status, text: STATUS_TEXT[s.status] || s.status }),
        el("td", { text: s.reason })));
    }
    byId("result").hidden = false;
  }

  function records(tab) {
    if (!tab.records.length) return el("p", { class: "empty", text: "Inga uppgifter om " + tab.title.toLowerCase() + "." });
    const body = el("tbody");
    for (const r of tab.records) {
      body.append(el("tr", { "data-record": r.document_id },
        el("td", { class: "date", text: r.date || "–" }),
        el("td", { class: "text", text: r.text }),
        el("td", { class: "unit" }, r.unit, el("span", { class: "hsa", text: r.care_unit })),
        el("td", { class: "source", text: r.source }),
        el("td", { class: "basis basis-" + basisClass(r.basis), text: r.basis })));
    }
    const head = el("thead", {}, el("tr", {},
      ...["Datum", "Uppgift", "Vårdenhet", "Källa", "Åtkomst"].map((h) => el("th", { scope: "col", text: h }))));
    return el("table", {}, el("caption", { class: "visually-hidden", text: tab.title }), head, body);
  }

  function basisClass(basis) {
    return { "egen vårdgivare": "own", "samtycke": "consent", "nödåtkomst": "emergency" }[basis] || "other";
  }

  function select(index, focus) {
    const tabs = byId("tablist").querySelectorAll("[role=tab]");
    tabs.forEach((t, i) => {
      const on = i === index;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      byId(t.getAttribute("aria-controls")).hidden = !on;
      if (on && focus) t.focus();
    });
  }

  function signedOut(text) {
    csrf = null;
    clearResult();
    form.hidden = true;
    byId("user").hidden = true;
    byId("signed-out-text").textContent = text;
    byId("signed-out").hidden = false;
  }

  // who is signed in comes from the session (the hospital's login); staff choose among their own assignments
  async function loadSession() {
    let session;
    try {
      session = await call("GET", "/api/session");
    } catch (err) {
      if (err.status !== 401) showError("Inloggningen kunde inte kontrolleras: " + err.message);
      signedOut("Du är inte inloggad.");
      return;
    }
    csrf = session.csrf_token;
    byId("user-name").textContent = session.name || "";
    byId("user-hsa").textContent = session.hsa_id;
    byId("user").hidden = false;
    byId("demo-banner").hidden = !session.demo;
    fields.assignment.replaceChildren(...session.assignments.map((a) => el("option", { value: a.care_unit }, a.name)));
    byId("signed-out").hidden = true;
    form.hidden = false;
  }

  async function logout() {
    try {
      const answer = await call("POST", "/auth/logout");
      signedOut("Du är utloggad.");
      if (answer && answer.redirect) window.location.assign(answer.redirect);
    } catch (err) {
      showError("Utloggningen misslyckades: " + err.message);
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
  fields.emergency.addEventListener("change", () => {
    setEmergency(fields.emergency.checked);
    if (fields.emergency.checked) fields.reason.focus();
  });
  // a result belongs to one patient and one assignment: changing either takes it away
  fields.patient.addEventListener("input", () => { if (shownPatient && patientId() !== shownPatient) clearResult(); });
  fields.assignment.addEventListener("change", clearResult);
  byId("consent-button").addEventListener("click", registerConsent);
  byId("emergency-button").addEventListener("click", () => {
    setEmergency(true);
    fields.reason.focus();
    say("Ange skälet och välj Öppna med nödåtkomst.");
  });
  byId("logout-button").addEventListener("click", logout);
  loadSession();
})();
