/*
 * sfdcflex demo agent panel: stands in for the Flex CRM panel and reads as a model for a plugin.
 *
 * Everything a real Flex plugin does is here in plain JavaScript: take the agent's Flex token
 * (in Flex: manager.store.getState().flex.session.ssoTokenPayload.token; here the IAM stand-in
 * issues it), POST it as `Token` to each function, open the Salesforce OAuth popup and listen
 * for its postMessage, and show the caller's contact. The data-flow card reads the
 * `Server-Timing` header so the reader sees each hop of every request.
 */
"use strict";

const CONTACT_FIELDS = [
  "cust_name", "cust_title", "cust_acct_name", "cust_acct_type",
  "cust_acct_num", "cust_acct_sla", "cust_acct_priority", "cust_record_url",
];

const HOP_LABELS = {
  flex: "Flex token check",
  store: "Token store",
  cache: "Answer cache",
  "sfdc-search": "Salesforce search (SOSL)",
  "sfdc-query": "Salesforce query (SOQL)",
  "sfdc-userinfo": "Salesforce user info",
  "sfdc-refresh": "Salesforce token refresh",
  "sfdc-write": "Salesforce write (Task)",
  total: "Total on the server",
};

const POPUP_FEATURES = "width=520,height=640";
const POPUP_WAIT_MS = 10 * 60 * 1000;

/* Split `text` on `separator` where it is not inside a quoted string (RFC 9110 quoted-string). */
function splitOutsideQuotes(text, separator) {
  const parts = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (quoted && ch === "\\" && i + 1 < text.length) {
      current += ch + text[i + 1];
      i += 1;
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === separator && !quoted) {
      parts.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts.map((part) => part.trim()).filter(Boolean);
}

function unquote(value) {
  const text = value.trim();
  if (text.length >= 2 && text.startsWith('"') && text.endsWith('"')) {
    return text.slice(1, -1).replace(/\\(.)/g, "$1");
  }
  return text;
}

/* Parse a Server-Timing header (W3C Server Timing): `name;desc="Text";dur=12.3, ...`. */
function parseServerTiming(header) {
  const hops = [];
  for (const entry of splitOutsideQuotes(header || "", ",")) {
    const [name, ...params] = splitOutsideQuotes(entry, ";");
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) continue;
    const hop = { name, desc: "", dur: null };
    for (const param of params) {
      const eq = param.indexOf("=");
      const key = (eq < 0 ? param : param.slice(0, eq)).trim().toLowerCase();
      const value = eq < 0 ? "" : unquote(param.slice(eq + 1));
      // The spec keeps only the first occurrence of each parameter.
      if (key === "dur" && hop.dur === null) {
        const number = Number.parseFloat(value);
        if (Number.isFinite(number)) hop.dur = number;
      } else if (key === "desc" && !hop.desc) {
        hop.desc = value;
      }
    }
    hops.push(hop);
  }
  return hops;
}

function cacheState(hops) {
  const cache = hops.find((hop) => hop.name === "cache");
  if (!cache) return "none";
  const desc = cache.desc.toLowerCase();
  if (desc.includes("hit")) return "hit";
  if (desc.includes("miss")) return "miss";
  return "none";
}

/* The server's description without a repeat of the label: "Flex token check (cached)" → "cached". */
function descBeyondLabel(desc, label) {
  if (!desc.toLowerCase().startsWith(label.toLowerCase())) return desc;
  return desc.slice(label.length).trim().replace(/^\((.*)\)$/, "$1");
}

function formatMs(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/* Only http(s) links reach an href, so a record URL can never run script. */
function safeHttpUrl(value) {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function failureText(result, action) {
  const message = result.body && result.body.message;
  return message ? `${action}: ${message}` : `${action}: the server answered HTTP ${result.status}.`;
}

class Panel {
  constructor(base) {
    this.base = base;
    this.functionsOrigin = new URL(base).origin;
    this.config = null;
    this.token = null;
    this.agent = null;
    this.lookupTicket = 0;
    this.el = (id) => document.getElementById(id);
  }

  /* ---- errors, always in words on the page ---- */

  showError(message, code = "") {
    const box = this.el("error");
    box.textContent = message;
    box.dataset.code = code;
    box.hidden = false;
  }

  clearError() {
    const box = this.el("error");
    box.textContent = "";
    box.dataset.code = "";
    box.hidden = true;
  }

  /* ---- start-up: read demo-config.json from the functions base ---- */

  async start() {
    this.el("sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn();
    });
    this.el("connect").addEventListener("click", () => this.connect());
    this.el("disconnect").addEventListener("click", () => this.disconnect());
    this.startCallLog();
    window.addEventListener("message", (event) => this.onMessage(event));
    let response;
    try {
      response = await fetch(`${this.base}/demo-config.json`, { cache: "no-store" });
    } catch (err) {
      this.showError(`Could not reach the functions server at ${this.base} (${err.message}). Is it running?`, "config");
      return;
    }
    const config = await readJson(response);
    if (!response.ok || !config || !Array.isArray(config.agents)) {
      this.showError(`Could not read demo-config.json from ${this.base} (HTTP ${response.status}).`, "config");
      return;
    }
    this.config = config;
    this.renderConfig();
  }

  renderConfig() {
    const { agents, tasks = [], mode, salesforce_url: salesforceUrl } = this.config;
    const select = this.el("agent-select");
    select.replaceChildren(...agents.map((agent) => new Option(`${agent.name} — ${agent.realm_user_id}`, agent.realm_user_id)));
    select.disabled = agents.length === 0;
    this.el("sign-in").disabled = agents.length === 0;
    if (mode === "demo") this.renderDemoBanner(salesforceUrl);
    this.el("task-list").replaceChildren(...tasks.map((task) => this.taskItem(task)));
  }

  renderDemoBanner(salesforceUrl) {
    const banner = this.el("mode-banner");
    banner.textContent = "Demo mode: Flex, Salesforce and Twilio are stand-ins running on this machine. ";
    const link = safeHttpUrl(salesforceUrl || "");
    if (link) {
      const anchor = Object.assign(document.createElement("a"), {
        href: link, target: "_blank", rel: "noopener", textContent: "Open the Salesforce stand-in",
      });
      banner.append(anchor);
    }
    banner.hidden = false;
  }

  taskItem(task) {
    const button = Object.assign(document.createElement("button"), { type: "button", className: "task" });
    button.dataset.caller = task.caller;
    button.disabled = true;
    button.setAttribute("aria-pressed", "false");
    const caller = Object.assign(document.createElement("span"), { className: "task-caller", textContent: task.caller });
    const label = Object.assign(document.createElement("span"), { className: "task-label", textContent: task.label || "" });
    button.append(caller, label);
    button.addEventListener("click", () => this.pickTask(task.caller, button, task));
    const item = document.createElement("li");
    item.append(button);
    return item;
  }

  /* ---- 1. sign in: the IAM stand-in issues the Flex token ---- */

  async signIn() {
    this.clearError();
    const realmUserId = this.el("agent-select").value;
    const agent = this.config.agents.find((a) => a.realm_user_id === realmUserId);
    let response;
    try {
      response = await fetch(`${this.config.iam_url}/demo/token`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ realm_user_id: realmUserId }),
      });
    } catch (err) {
      this.showError(`Could not reach the Twilio IAM stand-in at ${this.config.iam_url} (${err.message}).`, "iam");
      return;
    }
    const body = await readJson(response);
    if (!response.ok || !body || !body.token) {
      this.showError(failureText({ status: response.status, body }, "Sign-in failed"), "iam");
      return;
    }
    this.token = body.token;
    this.agent = agent;
    const status = this.el("agent-status");
    status.textContent = `Signed in as ${agent.name} (${agent.realm_user_id}).`;
    status.dataset.agent = agent.realm_user_id;
    this.resetContact("Pick a task to look up the caller.");
    for (const button of document.querySelectorAll("#task-list .task")) button.disabled = false;
    // The previous agent's link state must not show while this agent's is being read.
    const sfdcStatus = this.el("sfdc-status");
    sfdcStatus.textContent = "Checking the Salesforce link…";
    sfdcStatus.dataset.linked = "checking";
    this.el("connect").hidden = true;
    this.el("disconnect").hidden = true;
    await this.refreshUser();
  }

  /* ---- every function call: POST {Token, ...} and show its data flow ---- */

  async call(name, fields = {}) {
    const route = `/${name}`;
    const started = performance.now();
    let response;
    try {
      response = await fetch(`${this.base}${route}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ Token: this.token, ...fields }),
      });
    } catch (err) {
      this.renderFlow({ route, status: "no answer", hops: [], roundTrip: performance.now() - started });
      throw new Error(`Could not reach ${route} at ${this.base} (${err.message}). Is the server running?`);
    }
    const hops = parseServerTiming(response.headers.get("Server-Timing"));
    const body = await readJson(response);
    this.renderFlow({ route, status: response.status, hops, roundTrip: performance.now() - started });
    return { status: response.status, ok: response.ok, body: body || {} };
  }

  /* ---- 2. who is this agent in Salesforce? ---- */

  async refreshUser() {
    let result;
    try {
      result = await this.call("get-user");
    } catch (err) {
      this.showError(err.message, "network");
      return;
    }
    if (result.ok) {
      this.setLinked(result.body);
    } else if (result.body.error === "not_linked") {
      this.setLinked(null);
    } else {
      this.setLinked(undefined);
      this.showError(failureText(result, "Checking the Salesforce link failed"), result.body.error || "");
    }
  }

  /* user: the get-user answer, null when not linked, undefined when unknown. */
  setLinked(user) {
    const status = this.el("sfdc-status");
    const connect = this.el("connect");
    const disconnect = this.el("disconnect");
    if (user) {
      status.textContent = `Logged into Salesforce as ${user.display_name} (${user.sfdc_username})`;
      status.dataset.linked = "true";
    } else if (user === null) {
      status.textContent = "Not connected to Salesforce yet.";
      status.dataset.linked = "false";
    } else {
      status.textContent = "The Salesforce link could not be checked.";
      status.dataset.linked = "unknown";
    }
    connect.hidden = Boolean(user) || !this.token;
    disconnect.hidden = !user;
  }

  /* ---- 3. connect: the OAuth popup reports back with postMessage ---- */

  async connect() {
    this.clearError();
    // Open the window inside the click, before any await: browsers allow popups only
    // during a user gesture, and the authorize URL is not known until /auth answers.
    const popup = window.open("", "sfdc-login", POPUP_FEATURES);
    if (!popup) {
      this.showError("The browser blocked the Salesforce sign-in window. Allow pop-ups for this page and press Connect Salesforce again.", "popup_blocked");
      return;
    }
    let result;
    try {
      result = await this.call("auth", { origin: location.origin });
    } catch (err) {
      popup.close();
      this.showError(err.message, "network");
      return;
    }
    if (!result.ok || !safeHttpUrl(result.body.authorize_url || "")) {
      popup.close();
      this.showError(failureText(result, "Could not start the Salesforce sign-in"), result.body.error || "");
      return;
    }
    popup.location.href = result.body.authorize_url;
    this.el("sfdc-status").textContent = "Waiting for the Salesforce sign-in window…";
    this.watchPopup(popup);
  }

  /* If the agent closes the window without finishing, show the real link state again. */
  watchPopup(popup) {
    const started = Date.now();
    const timer = window.setInterval(() => {
      // The signed OAuth state expires after 10 minutes, so waiting longer is pointless.
      if (!popup.closed && Date.now() - started < POPUP_WAIT_MS) return;
      window.clearInterval(timer);
      this.refreshUser();
    }, 500);
  }

  onMessage(event) {
    // Only the functions server's callback page may report a link result.
    if (event.origin !== this.functionsOrigin) return;
    const message = event.data;
    if (!message || typeof message !== "object" || message.source !== "sfdcflex") return;
    if (message.type === "linked") {
      this.clearError();
      this.refreshUser();
    } else if (message.type === "link_failed") {
      const reason = message.message || `the link was refused (${message.error || "unknown error"})`;
      this.showError(`Salesforce was not connected: ${reason}`, message.error || "link_failed");
      this.refreshUser();
    }
  }

  /* ---- 4. disconnect ---- */

  async disconnect() {
    this.clearError();
    let result;
    try {
      result = await this.call("unlink");
    } catch (err) {
      this.showError(err.message, "network");
      return;
    }
    if (!result.ok) {
      this.showError(failureText(result, "Disconnecting failed"), result.body.error || "");
      return;
    }
    this.setLinked(null);
    this.resetContact("Salesforce is disconnected. Connect it again to look up callers.");
  }

  /* ---- 5. the task queue and the contact card ---- */

  async pickTask(caller, button, task = {}) {
    this.clearError();
    this.task = { ...task, pickedAt: Date.now() };
    this.el("log-notes").value = "";
    for (const other of document.querySelectorAll("#task-list .task")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    const ticket = ++this.lookupTicket;
    this.resetContact(`Looking up ${caller}…`, "loading");
    let result;
    try {
      result = await this.call("get-contact", this.callerQuery());
    } catch (err) {
      if (ticket === this.lookupTicket) this.resetContact(err.message, "error");
      this.showError(err.message, "network");
      return;
    }
    // A slower answer for an earlier pick must not replace the newer one.
    if (ticket !== this.lookupTicket) return;
    const code = result.body.error || "";
    if (result.ok) {
      this.renderContact(result.body);
    } else if (code === "no_match") {
      this.resetContact(`No matching contact in Salesforce for ${caller}.`, "no_match");
    } else if (code === "not_linked") {
      this.setLinked(null);
      this.resetContact("Salesforce is not connected for this agent. Press Connect Salesforce first.", "not_linked");
    } else {
      this.resetContact(`The lookup for ${caller} failed.`, "error");
      this.showError(failureText(result, `Looking up ${caller} failed`), code);
    }
  }

  resetContact(text, state = "idle") {
    const message = this.el("contact-message");
    message.textContent = text;
    message.dataset.state = state;
    message.hidden = false;
    this.el("contact-card").hidden = true;
    this.el("log-call-form").hidden = true;
  }

  renderContact(answer) {
    const card = this.el("contact-card");
    // A Lead has no Account yet: its Company stands in the Account row.
    const contact = answer.cust_type === "Lead" ? { ...answer, cust_acct_name: answer.cust_company } : answer;
    for (const field of CONTACT_FIELDS) {
      const value = contact[field] === null || contact[field] === undefined ? "" : String(contact[field]);
      for (const node of card.querySelectorAll(`[data-field="${field}"]`)) {
        node.dataset.value = value;
        node.textContent = field === "cust_record_url" ? `Open the ${contact.cust_type || "Contact"} in Salesforce` : value || "—";
      }
    }
    const href = safeHttpUrl(contact.cust_record_url || "");
    for (const link of card.querySelectorAll("a[data-field]")) {
      if (href) link.href = href; else link.removeAttribute("href");
    }
    const matches = Number(contact.matches);
    this.el("contact-matches").textContent = matches > 1
      ? `${matches} records match; a Contact before a Lead, the most recently modified first.`
      : "";
    this.el("contact-message").hidden = true;
    this.el("contact-message").dataset.state = "found";
    card.hidden = false;
    this.renderCandidates(contact);
    this.showCallLog(contact);
  }

  /* ---- 7. several matches, and logging the call to Salesforce ---- */

  /* A chat or email task carries an address; a call, the caller's number. */
  callerQuery(extra = {}) {
    const caller = this.task.caller;
    return this.task.channel === "email" ? { email: caller, ...extra } : { phone: caller, ...extra };
  }

  renderCandidates(contact) {
    const candidates = Array.isArray(contact.candidates) ? contact.candidates : [];
    const select = this.el("candidate-select");
    select.replaceChildren(...candidates.map((c) => {
      const where = c.cust_acct_name ? `, ${c.cust_acct_name}` : "";
      return new Option(`${c.cust_name} (${c.cust_type}${where})`, c.cust_id, false, c.cust_id === contact.cust_id);
    }));
    this.el("candidates").hidden = candidates.length < 2;
  }

  async pickCandidate(contactId) {
    this.clearError();
    const ticket = ++this.lookupTicket;
    let result;
    try {
      result = await this.call("get-contact", this.callerQuery({ contact_id: contactId }));
    } catch (err) {
      this.showError(err.message, "network");
      return;
    }
    if (ticket !== this.lookupTicket) return;
    if (result.ok) this.renderContact(result.body);
    else this.showError(failureText(result, "Showing that record failed"), result.body.error || "");
  }

  startCallLog() {
    this.el("candidate-select").addEventListener("change", (event) => this.pickCandidate(event.target.value));
    this.el("log-call-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.logCall();
    });
  }

  showCallLog(contact) {
    this.loggedFor = contact.cust_id;
    this.el("log-call-form").hidden = false;
    this.setLogStatus("", "idle");
  }

  setLogStatus(text, state, href) {
    const status = this.el("log-status");
    status.replaceChildren(text);
    status.dataset.state = state;
    const link = safeHttpUrl(href || "");
    if (link) {
      status.append(" ", Object.assign(document.createElement("a"), {
        href: link, target: "_blank", rel: "noopener", textContent: "Open the Task",
      }));
    }
  }

  async logCall() {
    this.clearError();
    const task = this.task;
    const fields = {
      contact_id: this.loggedFor, task_sid: task.task_sid, call_sid: task.call_sid,
      duration: Math.round((Date.now() - task.pickedAt) / 1000),
      disposition: this.el("log-disposition").value, notes: this.el("log-notes").value,
    };
    if (task.channel !== "email") fields.phone = task.caller;
    this.el("log-save").disabled = true;
    this.setLogStatus("Saving to Salesforce…", "saving");
    let result;
    try {
      result = await this.call("log-call", fields);
    } catch (err) {
      this.setLogStatus("Not saved.", "error");
      this.showError(err.message, "network");
      return;
    } finally {
      this.el("log-save").disabled = false;
    }
    if (result.ok) {
      const text = result.body.created ? "Logged to Salesforce." : "Logged to Salesforce (the earlier log of this call was updated).";
      this.setLogStatus(text, "logged", result.body.task_url);
    } else {
      this.setLogStatus("Not saved.", "error");
      this.showError(failureText(result, "Logging the call failed"), result.body.error || "");
    }
  }

  /* ---- 6. the data-flow card, from Server-Timing ---- */

  renderFlow({ route, status, hops, roundTrip }) {
    const flow = this.el("flow");
    const cache = cacheState(hops);
    flow.dataset.route = route;
    flow.dataset.status = String(status);
    flow.dataset.cache = cache;
    this.el("flow-summary").textContent =
      `POST ${route} → ${status} · ${formatMs(roundTrip)} round trip seen by the browser`;
    const badge = this.el("cache-badge");
    badge.dataset.cache = cache;
    badge.textContent = cache === "hit" ? "cache hit — no Salesforce call"
      : cache === "miss" ? "cache miss" : "";
    badge.hidden = cache === "none";
    const longest = Math.max(1, ...hops.map((hop) => hop.dur || 0));
    const items = hops.map((hop) => this.hopItem(hop, longest));
    if (items.length === 0) {
      const note = document.createElement("li");
      note.className = "hint";
      note.textContent = "The server sent no Server-Timing header for this request.";
      items.push(note);
    }
    this.el("flow-hops").replaceChildren(...items);
  }

  hopItem(hop, longest) {
    const item = Object.assign(document.createElement("li"), { className: "hop" });
    item.dataset.hop = hop.name;
    item.dataset.dur = hop.dur === null ? "" : String(hop.dur);
    if (hop.name === "cache") item.dataset.cache = cacheState([hop]);
    const name = Object.assign(document.createElement("span"), {
      className: "hop-name", textContent: HOP_LABELS[hop.name] || hop.name,
    });
    const desc = descBeyondLabel(hop.desc, name.textContent);
    if (desc) {
      name.append(Object.assign(document.createElement("span"), { className: "hop-desc", textContent: desc }));
    }
    const dur = Object.assign(document.createElement("span"), { className: "hop-dur", textContent: formatMs(hop.dur) });
    const bar = Object.assign(document.createElement("span"), { className: "hop-bar" });
    bar.style.width = `${Math.max(2, ((hop.dur || 0) / longest) * 100)}%`;
    item.append(name, dur, bar);
    return item;
  }
}

/* The functions base: this page's origin, or ?functions=<url> when served from elsewhere. */
function functionsBase() {
  const given = new URLSearchParams(location.search).get("functions");
  const base = given ? new URL(given, location.href).href : location.origin;
  return base.replace(/\/+$/, "");
}

function startPanel() {
  let panel;
  try {
    panel = new Panel(functionsBase());
  } catch (err) {
    document.getElementById("error").textContent = `The ?functions= address is not a valid URL: ${err.message}`;
    document.getElementById("error").hidden = false;
    return;
  }
  // Anything unexpected is still said in words on the page, not only in the console.
  window.addEventListener("error", (event) => panel.showError(`Unexpected error: ${event.message}`, "script"));
  window.addEventListener("unhandledrejection", (event) => {
    panel.showError(`Unexpected error: ${event.reason && event.reason.message ? event.reason.message : event.reason}`, "script");
  });
  panel.start();
}

startPanel();
