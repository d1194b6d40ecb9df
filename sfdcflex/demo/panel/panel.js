/*
 * sfdcflex demo agent panel: stands in for the Flex CRM panel and reads as a model for a plugin.
 *
 * Everything a real Flex plugin does is here in plain JavaScript: take the agent's Flex token
 * (in Flex: manager.store.getState().flex.session.ssoTokenPayload.token; here the IAM stand-in
 * issues it), POST it as `Token` to each function, open the Salesforce OAuth popup and listen
 * for its postMessage, show the caller's contact and log the call. Loaded before this file:
 * flow.js turns each answer's `Server-Timing` header into the data-flow card, so the reader sees
 * every hop; card.js shows the caller card and announces results; calllog.js is the Log call form.
 */
"use strict";

const POPUP_FEATURES = "width=520,height=640";
const POPUP_WAIT_MS = 10 * 60 * 1000;

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

/* What the Salesforce card says in each state of the agent's link. */
const LINK_WORDS = {
  signed_out: () => "Sign in as an agent first.",
  checking: () => "Checking the Salesforce link…",
  not_linked: () => "Not connected to Salesforce. Press Connect Salesforce to link your Salesforce user.",
  waiting: () => "Waiting for you to log in to Salesforce in the pop-up window…",
  linked: (user) => `Logged into Salesforce as ${user.display_name} (${user.sfdc_username}).`,
  disconnected: () => "Disconnected from Salesforce. Press Connect Salesforce to link again.",
  unknown: () => "The Salesforce link could not be checked. Sign in again to retry.",
};

class Panel {
  constructor(base) {
    this.base = base;
    this.functionsOrigin = new URL(base).origin;
    this.config = null;
    this.token = null;
    this.agent = null;
    this.lookupTicket = 0;
    this.popup = null;
    this.card = new ContactCard();
    this.callLog = new CallLog(this);
    this.linkTrace = new LinkTraceView(base);
    this.tabs = new DataFlowTabs((id) => { if (id === "tab-link") this.linkTrace.load(); });
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

  /* If the focused control was just hidden, focus the control now shown in its place. */
  keepFocusIn(...candidates) {
    const active = document.activeElement;
    if (active && active !== document.body && !active.closest("[hidden]")) return;
    const shown = candidates.map((id) => this.el(id)).find((el) => el && !el.closest("[hidden]"));
    if (shown) shown.focus();
  }

  /* ---- start-up: read demo-config.json from the functions base ---- */

  async start() {
    this.el("sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn();
    });
    this.el("connect").addEventListener("click", () => this.connect());
    this.el("disconnect").addEventListener("click", () => this.disconnect());
    // Another of several matches: its card is shown and announced, focus stays on the picker.
    this.el("candidate-select").addEventListener("change", (event) => {
      this.lookUp(this.callerQuery({ contact_id: event.target.value }), { moveFocus: false });
    });
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
    const link = externalLink(salesforceUrl, "Open the Salesforce stand-in");
    if (link) banner.append(link);
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
    button.addEventListener("click", () => this.pickTask(task, button));
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
    this.card.reset("Pick a task to look up the caller.");
    // Nothing of the previous agent may stay on screen: no selected task, no link state.
    for (const button of document.querySelectorAll("#task-list .task")) {
      button.disabled = false;
      button.setAttribute("aria-pressed", "false");
    }
    this.showLink("checking");
    await this.refreshUser();
    announce(`${status.textContent} ${this.el("sfdc-status").textContent}`);
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
      renderFlow({ route, status: "no answer", hops: [], roundTrip: performance.now() - started });
      throw new Error(`Could not reach ${route} at ${this.base} (${err.message}). Is the server running?`);
    }
    // A 404 not_linked or no_match is an answer, shown in words; this page logs nothing for it.
    // Chromium itself prints every 4xx/5xx fetch in the console ("Failed to load resource"),
    // and no page can turn that off.
    const hops = parseServerTiming(response.headers.get("Server-Timing"));
    const body = await readJson(response);
    renderFlow({ route, status: response.status, hops, roundTrip: performance.now() - started });
    return { status: response.status, ok: response.ok, body: body || {} };
  }

  /* ---- 2. who is this agent in Salesforce? ---- */

  async refreshUser() {
    let result;
    try {
      result = await this.call("get-user");
    } catch (err) {
      this.showLink("unknown");
      this.showError(err.message, "network");
      return;
    }
    if (result.ok) {
      this.showLink("linked", result.body);
    } else if (result.body.error === "not_linked") {
      this.showLink("not_linked");
    } else {
      this.showLink("unknown");
      this.showError(failureText(result, "Checking the Salesforce link failed"), result.body.error || "");
    }
  }

  /* state: a key of LINK_WORDS; user: the get-user answer when linked. */
  showLink(state, user = null) {
    const status = this.el("sfdc-status");
    status.textContent = LINK_WORDS[state](user);
    status.dataset.state = state;
    const settled = !["checking", "waiting"].includes(state);
    this.el("connect").hidden = !this.token || state === "linked" || state === "checking";
    this.el("disconnect").hidden = state !== "linked";
    if (settled) this.keepFocusIn("connect", "disconnect");
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
    this.popup = popup;
    this.showLink("waiting");
    this.watchPopup(popup);
  }

  /* If the agent closes the window without finishing, show the real link state again. */
  watchPopup(popup) {
    const started = Date.now();
    const timer = window.setInterval(() => {
      // The signed OAuth state expires after 10 minutes, so waiting longer is pointless.
      if (!popup.closed && Date.now() - started < POPUP_WAIT_MS) return;
      window.clearInterval(timer);
      if (this.el("sfdc-status").dataset.state === "waiting") this.refreshUser();
    }, 500);
  }

  async onMessage(event) {
    // Only the functions server's callback page may report a link result.
    if (event.origin !== this.functionsOrigin) return;
    const message = event.data;
    if (!message || typeof message !== "object" || message.source !== "sfdcflex") return;
    // The panel now says the outcome itself; closing the window at once (the opener may close
    // a window it opened) also lets the next Connect open a fresh one instead of reusing a
    // window that is about to close itself.
    if (this.popup && !this.popup.closed) this.popup.close();
    if (message.type === "linked") {
      this.clearError();
      await this.linkTrace.load();   // first: the status changes only when all is ready to be read out
      await this.refreshUser();
      announce(`${this.el("sfdc-status").textContent} ${this.linkTrace.announcement()}`.trim());
    } else if (message.type === "link_failed") {
      this.showError(`Salesforce was not connected: ${this.refusalText(message)}`, message.error || "link_failed");
      await this.linkTrace.load();
      await this.refreshUser();
      const where = this.linkTrace.announcement();   // "" when the trace could not be read
      if (where) announce(where);
    }
  }

  /* Why the link failed, in words for this agent. */
  refusalText(message) {
    const reason = message.message || `the link was refused (${message.error || "unknown error"}).`;
    if (message.error === "access_denied") {
      return "you pressed Deny on the Salesforce page, so nothing was linked. Press Connect Salesforce to try again.";
    }
    const agent = this.agent || {};
    if (message.error !== "identity_mismatch" || this.config.mode !== "demo" || agent.can_link !== false) {
      return reason;
    }
    // The server's advice names a Salesforce user to sign in as; in the demo that user does not exist.
    const others = this.config.agents.filter((a) => a.can_link).map((a) => a.name).join(" or ");
    const fact = reason.split(";")[0].replace(/\.$/, "");
    return `${fact}. In this demo ${agent.name} has no Salesforce user named ${agent.realm_user_id}, `
      + `so the link is refused on purpose, to show how a mismatch is handled.`
      + (others ? ` Sign in as ${others} to connect.` : "");
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
    this.showLink("disconnected");
    this.card.reset("Salesforce is disconnected. Connect it again to look up callers.");
    announce(this.el("sfdc-status").textContent);
  }

  /* ---- 5. the task queue and the contact card ---- */

  async pickTask(task, button) {
    for (const other of document.querySelectorAll("#task-list .task")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    this.task = task;
    this.callLog.startTask(task);
    this.card.reset(`Looking up ${task.caller}…`, "loading");
    await this.lookUp(this.callerQuery());
  }

  /* A chat or email task carries an address; a call, the caller's number. */
  callerQuery(extra = {}) {
    const { caller, channel } = this.task;
    return channel === "email" ? { email: caller, ...extra } : { phone: caller, ...extra };
  }

  /* POST /get-contact and show the answer; moveFocus: false keeps focus on the picker. */
  async lookUp(query, { moveFocus = true } = {}) {
    this.clearError();
    const caller = this.task.caller;
    const ticket = ++this.lookupTicket;
    let result;
    try {
      result = await this.call("get-contact", query);
    } catch (err) {
      if (ticket === this.lookupTicket) this.card.showOutcome(err.message, "error");
      this.showError(err.message, "network");
      return;
    }
    // A slower answer for an earlier pick must not replace the newer one.
    if (ticket !== this.lookupTicket) return;
    const code = result.body.error || "";
    if (result.ok) {
      this.card.render(result.body, { moveFocus });
      this.callLog.showFor(result.body.cust_id);
    } else if (code === "no_match") {
      this.card.showOutcome(`No matching contact in Salesforce for ${caller}.`, "no_match");
    } else if (code === "not_linked") {
      this.showLink("not_linked");
      this.card.showOutcome("Salesforce is not connected for this agent. Press Connect Salesforce first.", "not_linked");
    } else {
      this.card.showOutcome(`The lookup for ${caller} failed.`, "error");
      this.showError(failureText(result, `Looking up ${caller} failed`), code);
    }
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
