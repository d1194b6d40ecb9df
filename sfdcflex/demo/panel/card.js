/*
 * The caller card, and the polite live region that reads results out.
 *
 * In Flex the CRM panel is about 400 px wide, so the card sits below the task list: after every
 * lookup it is brought into view, focus moves to its heading and the outcome is announced,
 * so a sighted agent and a screen-reader user both land on the answer.
 */
"use strict";

const CONTACT_FIELDS = [
  "cust_name", "cust_title", "cust_acct_name", "cust_acct_type",
  "cust_acct_num", "cust_acct_sla", "cust_acct_priority", "cust_record_url",
];

/* Only http(s) links reach an href, so a record URL can never run script. */
function safeHttpUrl(value) {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/* A link opening `href` in a new tab, or null when `href` is not an http(s) URL. */
function externalLink(href, text) {
  const url = safeHttpUrl(href || "");
  return url && Object.assign(document.createElement("a"), { href: url, target: "_blank", rel: "noopener", textContent: text });
}

/* Say `text` through the polite live region, even when it equals the last announcement. */
function announce(text) {
  const live = document.getElementById("live");
  // A live region speaks only when its text changes, so a repeat gets a no-break space.
  live.textContent = live.textContent === text ? `${text}\u00a0` : text;
}

class ContactCard {
  constructor() {
    this.section = document.getElementById("contact");
    this.heading = document.getElementById("contact-title");
    this.message = document.getElementById("contact-message");
    this.card = document.getElementById("contact-card");
  }

  /* Words instead of a contact, without moving focus (sign-in, "Looking up…", disconnect). */
  reset(text, state = "idle") {
    this.message.textContent = text;
    this.message.dataset.state = state;
    this.message.hidden = false;
    this.card.hidden = true;
  }

  /* A lookup that found no contact, in words: shown, brought into view and announced. */
  showOutcome(text, state) {
    this.reset(text, state);
    this.reveal(text);
  }

  /* Bring the card into view if it is not, focus its heading (tabindex=-1), announce. */
  reveal(announcement) {
    const box = this.section.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) this.section.scrollIntoView({ block: "start" });
    this.heading.focus({ preventScroll: true });
    announce(announcement);
  }

  /* The card for a get-contact answer. A lookup moves focus to the heading; choosing another
   * match in the picker does not (focus stays on the picker), the new card is only announced. */
  render(answer, { moveFocus = true } = {}) {
    const lead = answer.cust_type === "Lead";
    // A Lead (a prospect) has no Account yet: its Company stands in the Account row.
    const contact = lead ? { ...answer, cust_acct_name: answer.cust_company } : answer;
    const kind = lead ? "Lead" : "Contact";
    for (const field of CONTACT_FIELDS) {
      const value = contact[field] === null || contact[field] === undefined ? "" : String(contact[field]);
      for (const node of this.card.querySelectorAll(`[data-field="${field}"]`)) {
        node.dataset.value = value;
        node.textContent = field === "cust_record_url" ? `Open the ${kind} in Salesforce` : value || "—";
      }
    }
    document.getElementById("contact-account-term").textContent = lead ? "Company" : "Account";
    const href = safeHttpUrl(contact.cust_record_url || "");
    for (const link of this.card.querySelectorAll("a[data-field]")) {
      if (href) link.href = href; else link.removeAttribute("href");
    }
    const matches = Number(contact.matches) || 0;
    const choice = this.renderCandidates(contact) ? "choose another in the list below" : "showing the most recently modified";
    const note = matches > 1 ? `${matches} records match; ${choice}.` : "";
    document.getElementById("contact-matches").textContent = note;
    this.message.hidden = true;
    this.message.dataset.state = "found";
    this.card.hidden = false;
    const who = [contact.cust_name, contact.cust_title, contact.cust_acct_name].filter(Boolean).join(", ");
    const said = `${who}${lead ? " (a Lead)" : ""}.`;
    if (moveFocus) this.reveal(`Caller found: ${said}${note ? ` ${note}` : ""}`);
    else announce(`Showing ${said}`);
  }

  /* The picker of the other matches, shown when there are several; true when it is shown. */
  renderCandidates(contact) {
    const candidates = Array.isArray(contact.candidates) ? contact.candidates : [];
    const select = document.getElementById("candidate-select");
    select.replaceChildren(...candidates.map((c) => {
      const where = c.cust_acct_name ? `, ${c.cust_acct_name}` : "";
      return new Option(`${c.cust_name} (${c.cust_type}${where})`, c.cust_id, false, c.cust_id === contact.cust_id);
    }));
    document.getElementById("candidates").hidden = candidates.length < 2;
    return candidates.length > 1;
  }
}
