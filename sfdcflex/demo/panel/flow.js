/*
 * The data-flow card: each hop of the last request, read from its Server-Timing header.
 *
 * The functions name every hop (`flex`, `store`, `cache`, `sfdc-search`, ...) and describe it
 * (sfdcflex/runtime/timing.py and the modules that time a hop). The card shows each hop once:
 * a plain label for the name, plus a few words only where the description adds something.
 */
"use strict";

const HOP_LABELS = {
  flex: "Flex token check",
  store: "Token store",
  cache: "Answer cache",
  "sfdc-search": "Salesforce search (SOSL)",
  "sfdc-query": "Salesforce query (SOQL)",
  "sfdc-userinfo": "Salesforce user info",
  "sfdc-refresh": "Salesforce token refresh",
  "sfdc-token": "Salesforce sign-in code exchange",
  "sfdc-revoke": "Salesforce sign-out",
  "sfdc-write": "Salesforce save",
  total: "Total on the server",
};

/* What each known description adds to its hop's label, in plain words ("" adds nothing). */
const HOP_DETAILS = {
  "Flex token check": "",
  "Flex token check (cached, no IAM call)": "remembered, no call to Twilio",
  "tokens in memory": "tokens already in memory",
  "token store read": "read",
  "token store re-read": "read again",
  "token store write": "new tokens saved",
  hit: "hit",
  miss: "miss",
  "Salesforce SOSL search": "",
  "Salesforce SOQL query (search index lag)": "the search index has not caught up yet",
  "Salesforce userinfo": "",
  "Salesforce token refresh": "",
  "refreshed by a concurrent request": "done by another request just before",
  "Salesforce code exchange": "",
  "Salesforce revoke + token store delete": "tokens revoked and deleted",
  "Salesforce SOQL: Task already logged?": "was this call logged before?",
  "Salesforce SOQL: the Contact's Account": "the contact's account, for the Task",
  "Salesforce Task create": "the call, as a new Task",
  "Salesforce Task update": "the call's Task, updated",
};
const AFTER_REFRESH = " (after refresh)";

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

const words = (text) => new Set(text.toLowerCase().match(/[a-z0-9]+/g) || []);

/* The hop's label and what its description adds: {label, detail}, never the same words twice. */
function describeHop(hop) {
  const label = HOP_LABELS[hop.name] || hop.desc || hop.name;
  let desc = hop.desc === label ? "" : hop.desc;
  const retried = desc.endsWith(AFTER_REFRESH);
  if (retried) desc = desc.slice(0, -AFTER_REFRESH.length);
  let detail = desc in HOP_DETAILS ? HOP_DETAILS[desc] : desc;
  // An unknown description that only repeats the label's words adds nothing.
  const labelWords = words(label);
  if (detail && [...words(detail)].every((word) => labelWords.has(word))) detail = "";
  if (retried) detail = detail ? `${detail}, retried after the refresh` : "retried after the refresh";
  return { label, detail };
}

function formatMs(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/* The cache badge tells whether a contact lookup reached Salesforce; other calls get none. */
function cacheBadgeText(route, cache) {
  if (route !== "/get-contact") return "";
  if (cache === "hit") return "cache hit — no Salesforce call";
  return cache === "miss" ? "cache miss" : "";
}

function hopItem(hop, longest) {
  const { label, detail } = describeHop(hop);
  const item = Object.assign(document.createElement("li"), { className: "hop" });
  item.dataset.hop = hop.name;
  item.dataset.label = label;
  item.dataset.detail = detail;
  item.dataset.dur = hop.dur === null ? "" : String(hop.dur);
  if (hop.name === "cache") item.dataset.cache = cacheState([hop]);
  const name = Object.assign(document.createElement("span"), { className: "hop-name", textContent: label });
  if (detail) {
    name.append(Object.assign(document.createElement("span"), { className: "hop-desc", textContent: detail }));
  }
  const dur = Object.assign(document.createElement("span"), { className: "hop-dur", textContent: formatMs(hop.dur) });
  const bar = Object.assign(document.createElement("span"), { className: "hop-bar" });
  bar.setAttribute("aria-hidden", "true");
  bar.style.width = `${Math.max(2, ((hop.dur || 0) / longest) * 100)}%`;
  item.append(name, dur, bar);
  return item;
}

/* Fill the data-flow card for one request: route, status, the browser's round trip, the hops. */
function renderFlow({ route, status, hops, roundTrip }) {
  const flow = document.getElementById("flow");
  const cache = cacheState(hops);
  flow.dataset.route = route;
  flow.dataset.status = String(status);
  flow.dataset.cache = cache;
  document.getElementById("flow-summary").textContent =
    `POST ${route} → ${status} · ${formatMs(roundTrip)} round trip seen by the browser`;
  const badge = document.getElementById("cache-badge");
  badge.textContent = cacheBadgeText(route, cache);
  badge.dataset.cache = badge.textContent ? cache : "none";
  badge.hidden = !badge.textContent;
  const longest = Math.max(1, ...hops.map((hop) => hop.dur || 0));
  const items = hops.map((hop) => hopItem(hop, longest));
  if (items.length === 0) {
    const note = Object.assign(document.createElement("li"), { className: "hint" });
    note.textContent = "The server sent no Server-Timing header for this request.";
    items.push(note);
  }
  document.getElementById("flow-hops").replaceChildren(...items);
}
