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
  const ATTACHMENT_TEXT = { image: "Bild", file: "Fil", text: "Text", link: "Länk", reference: "Referens",
    unreadable: "Bilaga" };
  let shownPatient = null;
  let csrf = null;  // the session's CSRF token, sent with every call
  let running = null;  // the AbortController of the overview being read
  const opened = new Set();  // records opened to their whole text, by document id, kept while the overview grows
  const rowIds = new Map();  // document id -> a number for element ids, the same in every rendering

  function rowId(documentId) {
    if (!rowIds.has(documentId)) rowIds.set(documentId, rowIds.size + 1);
    return rowIds.get(documentId);
  }

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
    for (const id of ["search-button", "consent-button", "emergency-button"]) byId(id).disabled = on;
    if (text !== undefined) say(text);
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
    if (running) { running.abort(); running = null; }
    opened.clear();
    byId("result").hidden = true;
    byId("tablist").replaceChildren();
    byId("panels").replaceChildren();
    byId("notices").replaceChildren();
    byId("sources").replaceChildren();
    shownPatient = null;
  }

  // The overview arrives source by source (NDJSON, one whole overview per line): what is there is shown at once,
  // the sources still waiting are marked, the last line is complete.
  async function search() {
    const emergency = fields.emergency.checked;
    if (!validate(emergency)) return;
    showError("");
    const body = who();
    if (emergency) body.emergency_reason = fields.reason.value.trim();
    clearResult();
    const controller = new AbortController();
    running = controller;
    busy(true, "Hämtar översikten från alla källor…");
    try {
      const headers = { "Content-Type": "application/json", "Accept": "application/x-ndjson" };
      if (csrf) headers["X-CSRF-Token"] = csrf;
      const response = await fetch("/api/overview/stream", {
        method: "POST", headers, body: JSON.stringify(body), credentials: "same-origin", cache: "no-store",
        signal: controller.signal,
      });
      if (!response.ok) await failure(response);
      let complete = false;
      for await (const line of lines(response)) {
        if (running !== controller) return;
        if (typeof line.detail === "string") throw new Error(line.detail);
        render(body.patient, line);
        complete = line.complete;
        say(complete ? "Översikten är hämtad." : "Visar det som har kommit. Väntar på svar från: "
          + line.pending_sources.join(", ") + ".");
      }
      if (!complete) throw new Error("Översikten avbröts innan alla källor hade svarat. Sök igen.");
    } catch (err) {
      if (err.name === "AbortError" || running !== controller) return;
      if (err.status) clearResult();
      reportFailure(err);
      if (!err.status) say("");
    } finally {
      if (running === controller) { running = null; busy(false); }
    }
  }

  async function* lines(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffered += decoder.decode(value || new Uint8Array(), { stream: !done });
      let end;
      while ((end = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, end).trim();
        buffered = buffered.slice(end + 1);
        if (line) yield JSON.parse(line);
      }
      if (done) return;
    }
  }

  async function failure(response) {
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    const detail = data && typeof data.detail === "string" ? data.detail : "Okänt fel (HTTP " + response.status + ").";
    if (response.status === 401) signedOut("Sessionen har gått ut. Logga in igen.");
    const error = new Error(detail);
    error.status = response.status;
    error.fields = (data && Array.isArray(data.errors)) ? data.errors : [];
    throw error;
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
    const selected = byId("tablist").querySelector("[aria-selected=true]");
    const selectedId = selected ? selected.id : null;
    const focused = document.activeElement && document.activeElement.id;
    const sourcesOpen = byId("sources-details").open;
    byId("tablist").replaceChildren();
    byId("panels").replaceChildren();
    byId("notices").replaceChildren();
    byId("sources").replaceChildren();
    shownPatient = patient;
    const assignment = fields.assignment.options[fields.assignment.selectedIndex];
    byId("result-title").textContent = "Patient " + formatPatient(patient) + " – " + (assignment ? assignment.text : "");
    byId("emergency-flag").hidden = !ov.emergency;
    byId("result").setAttribute("aria-busy", ov.complete ? "false" : "true");

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
    let current = ov.tabs.findIndex((tab) => "tab-" + tab.contract.replace(":", "-") === selectedId);
    if (current < 0) current = 0;
    ov.tabs.forEach((tab, i) => {
      const tabId = "tab-" + tab.contract.replace(":", "-");
      const panelId = "panel-" + tab.contract.replace(":", "-");
      const button = el("button", {
        type: "button", role: "tab", id: tabId, "aria-controls": panelId,
        "aria-selected": i === current ? "true" : "false", tabindex: i === current ? "0" : "-1",
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
      panel.hidden = i !== current;
      if (tab.notices.length) {
        panel.append(el("ul", { class: "tab-notices" }, ...tab.notices.map((n) =>
          el("li", { class: "notice notice-" + n.kind, "data-kind": n.kind, text: n.text }))));
      }
      panel.append(records(tab));
      panels.append(panel);
    });

    const sources = byId("sources");
    for (const s of ov.sources) {
      sources.append(el("tr", { "data-source": s.source, "data-contract": s.contract },
        el("td", {}, s.source, el("span", { class: "hsa", text: s.address })),
        el("td", { text: s.information_type }),
        el("td", { class: "st-" + s.status + (s.shown ? " st-shown" : ""), text: s.text }),
        el("td", { text: s.reason })));
    }
    byId("sources-details").open = sourcesOpen;
    byId("result").hidden = false;
    if (focused && byId(focused)) byId(focused).focus();
  }

  function named(name, hsaId) {
    return name && name !== hsaId ? [name, el("span", { class: "hsa", text: hsaId })] : [hsaId];
  }

  function records(tab) {
    if (!tab.records.length) return el("p", { class: "empty", text: tab.empty_text });
    const body = el("tbody");
    tab.records.forEach((r) => {
      const detailId = "detail-" + tab.contract.replace(":", "-") + "-" + rowId(r.document_id);
      const isOpen = opened.has(r.document_id);
      const toggle = el("button", {
        type: "button", class: "open", id: "open-" + detailId, "aria-expanded": isOpen ? "true" : "false",
        "aria-controls": detailId,
      }, isOpen ? "Stäng" : "Visa hela");
      const who = [r.author, r.profession].filter(Boolean).join(", ");
      const row = el("tr", { "data-record": r.document_id },
        el("td", { class: "date" }, el("span", { class: "day", text: r.date || "–" }),
          el("span", { class: "time", text: r.time })),
        el("td", { class: "text" }, el("span", { class: "line", text: r.text }),
          who ? el("span", { class: "who", text: who }) : "", toggle),
        el("td", { class: "unit" }, r.unit, el("span", { class: "hsa", text: r.care_unit })),
        el("td", { class: "source" }, ...named(r.source_name, r.source)),
        el("td", { class: "basis basis-" + basisClass(r.basis), text: r.basis }));
      const detail = el("tr", { class: "detail", id: detailId, "data-detail": r.document_id },
        el("td", { colspan: "5" }, ...(isOpen ? whole(r) : [])));
      detail.hidden = !isOpen;
      toggle.addEventListener("click", () => {
        const open = toggle.getAttribute("aria-expanded") !== "true";
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
        toggle.textContent = open ? "Stäng" : "Visa hela";
        detail.firstChild.replaceChildren(...(open ? whole(r) : []));
        detail.hidden = !open;
        if (open) opened.add(r.document_id); else opened.delete(r.document_id);
      });
      body.append(row, detail);
    });
    const head = el("thead", {}, el("tr", {},
      ...["Datum", "Uppgift", "Vårdenhet", "Källa", "Åtkomst"].map((h) => el("th", { scope: "col", text: h }))));
    return el("table", {}, el("caption", { class: "visually-hidden", text: tab.title }), head, body);
  }

  // The whole record: its text as written (as text, never markup), attachments, who wrote it, where, from where.
  function whole(r) {
    const out = [el("p", { class: "full-text", text: r.full_text || r.text })];
    if (r.attachments.length) out.push(el("ul", { class: "attachments" }, ...r.attachments.map(attachment)));
    const facts = [];
    const who = [r.author, r.profession].filter(Boolean).join(", ");
    if (who || r.author_time) facts.push(["Dokumenterad av", [who, r.author_time].filter(Boolean).join(", ")]);
    facts.push(["Vårdenhet", r.unit + (r.unit !== r.care_unit ? " (" + r.care_unit + ")" : "")]);
    facts.push(["Vårdgivare", r.care_giver_name ? r.care_giver_name + " (" + r.care_giver + ")" : r.care_giver]);
    facts.push(["Källa", r.source_name ? r.source_name + " (" + r.source + ")" : r.source]);
    facts.push(["Åtkomst", r.basis], ["Dokument-id", r.document_id]);
    out.push(el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
    return out;
  }

  function attachment(a) {
    const item = el("li", { class: "attachment attachment-" + a.kind, "data-kind": a.kind });
    const label = ATTACHMENT_TEXT[a.kind] + " (" + a.media_type + ")";
    if (a.kind === "image") {
      item.append(el("img", { src: "data:" + a.media_type + ";base64," + a.data, alt: label }));
    } else if (a.kind === "text") {
      item.append(el("strong", { text: label }), el("p", { class: "full-text", text: a.text }));
    } else if (a.kind === "file") {
      // downloaded, never opened in the page: an octet-stream Blob, whatever the record says the type is
      const bytes = Uint8Array.from(atob(a.data), (c) => c.charCodeAt(0));
      const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
      item.append(el("a", { href: url, download: a.name, text: "Ladda ner " + a.name }), " " + label);
    } else if (a.kind === "link" && /^https:\/\//i.test(a.url)) {
      item.append(el("a", { href: a.url, rel: "noopener noreferrer", target: "_blank", text: a.url }), " " + label);
    } else if (a.kind === "unreadable") {
      item.append("Bilagan kunde inte läsas (" + a.media_type + ").");
    } else {
      item.append(label + ", öppnas inte härifrån (inte https): ", el("code", { text: a.url }));
    }
    return item;
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
