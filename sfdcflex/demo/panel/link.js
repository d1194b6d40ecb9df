/*
 * The Link tab of the data-flow card: the last OAuth link as the exchanges between its parties
 * (panel, popup, sfdcflex, Salesforce's authorize page and consent, its token endpoint and
 * userinfo, the token store), from GET /demo/link-trace (sfdcflex/demo/trace.py). Every value
 * arrives already cut to a prefix by the server: no token, verifier or secret reaches this page.
 *
 * The two tabs follow the ARIA tabs pattern: arrow keys, Home and End move between them.
 */
"use strict";

class DataFlowTabs {
  constructor(onShow) {
    this.tabs = [...document.querySelectorAll('#flow [role="tab"]')];
    this.onShow = onShow;
    for (const tab of this.tabs) {
      tab.addEventListener("click", () => this.select(tab));
      tab.addEventListener("keydown", (event) => this.onKey(event, tab));
    }
  }

  onKey(event, tab) {
    const index = this.tabs.indexOf(tab);
    const last = this.tabs.length - 1;
    const next = { ArrowRight: index === last ? 0 : index + 1, ArrowLeft: index === 0 ? last : index - 1,
                   Home: 0, End: last }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    this.select(this.tabs[next]);
    this.tabs[next].focus();
  }

  select(chosen) {
    for (const tab of this.tabs) {
      const selected = tab === chosen;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !selected;
    }
    this.onShow(chosen.id);
  }
}

class LinkTraceView {
  constructor(base) {
    this.base = base;
    this.list = document.getElementById("link-steps");
    this.summary = document.getElementById("link-summary");
    this.trace = null;
  }

  /* Fetch the last link's steps and show them; returns the trace (null when it cannot be read). */
  async load() {
    let response;
    try {
      response = await fetch(`${this.base}/demo/link-trace`, { cache: "no-store" });
    } catch (err) {
      this.summary.textContent = `The link trace could not be read (${err.message}).`;
      return null;
    }
    const trace = await readJson(response);
    if (!response.ok || !trace || !Array.isArray(trace.steps)) {
      this.summary.textContent = `The link trace could not be read (HTTP ${response.status}).`;
      return null;
    }
    this.render(trace);
    return trace;
  }

  render(trace) {
    this.trace = trace;
    const section = document.getElementById("link-trace");
    section.dataset.state = trace.state;
    section.dataset.serial = String(trace.serial);
    this.summary.textContent = LinkTraceView.summaryOf(trace);
    this.list.replaceChildren(...trace.steps.map((step) => LinkTraceView.stepItem(step)));
  }

  static summaryOf(trace) {
    if (trace.state === "none") return "No link yet: press Connect Salesforce, then look here.";
    const count = `${trace.steps.length} step${trace.steps.length === 1 ? "" : "s"}`;
    if (trace.state === "linked") return `Linked ${trace.identity}: ${count}.`;
    if (trace.state === "refused") {
      const stop = trace.steps.find((step) => step.stopped);
      return `Stopped${stop ? ` at ${stop.target} (${stop.status})` : ""}: ${trace.reason ? trace.reason.error : "refused"}. ${count}.`;
    }
    return `In progress: ${count} so far.`;
  }

  /* What a screen reader hears when a link ends. */
  announcement() {
    const trace = this.trace;
    if (!trace) return "";
    if (trace.state === "linked") return `The Link tab shows the ${trace.steps.length} steps of this link.`;
    const stop = trace.steps.find((step) => step.stopped);
    return stop ? `The Link tab shows where it stopped: ${stop.target}, ${trace.reason.error}.` : "";
  }

  static stepItem(step) {
    const item = Object.assign(document.createElement("li"), { className: "step" });
    Object.assign(item.dataset, { source: step.source, target: step.target, method: step.method,
                                  status: String(step.status) });
    const head = Object.assign(document.createElement("p"), { className: "step-parties" });
    head.textContent = `${step.source} → ${step.target}`;
    const request = Object.assign(document.createElement("p"), { className: "step-request" });
    const url = Object.assign(document.createElement("code"), { textContent: `${step.method} ${step.url}` });
    request.append(url, ` · ${step.status} · ${formatMs(step.ms)} · ${step.time}`);
    item.append(head, request);
    if (step.carries.length) {
      const values = Object.assign(document.createElement("dl"), { className: "step-carries" });
      for (const value of step.carries) {
        const term = Object.assign(document.createElement("dt"), { textContent: value.name });
        const detail = document.createElement("dd");
        detail.append(Object.assign(document.createElement("code"), { textContent: value.value }));
        if (value.note) detail.append(Object.assign(document.createElement("span"), { className: "step-note", textContent: value.note }));
        values.append(term, detail);
      }
      item.append(values);
    }
    if (step.note) item.append(Object.assign(document.createElement("p"), { className: "hint", textContent: step.note }));
    if (step.stopped) {
      item.classList.add("stopped");
      item.append(Object.assign(document.createElement("p"), { className: "step-stopped", textContent: `Stopped here: ${step.stopped}` }));
    }
    return item;
  }
}
