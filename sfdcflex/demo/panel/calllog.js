/*
 * The "Log call" form under the caller card: POST /log-call writes the call to Salesforce as a
 * Task on the shown Contact or Lead. The call's SID is the key, so a second Save updates that
 * Task instead of adding one. The outcome is said next to Save and through the live region.
 *
 * Loaded after card.js (externalLink, announce); it is given the Panel, for `call`.
 */
"use strict";

class CallLog {
  constructor(panel) {
    this.panel = panel;
    this.form = document.getElementById("log-call-form");
    this.save = document.getElementById("log-save");
    this.notes = document.getElementById("log-notes");
    this.status = document.getElementById("log-status");
    this.task = null;
    this.contactId = null;
    this.saving = false;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.log();
    });
  }

  /* A new task: a new call, so the notes start empty and the duration counts from now. */
  startTask(task) {
    this.task = { ...task, pickedAt: Date.now() };
    this.notes.value = "";
  }

  /* The card now shows `contactId`: the next Save logs the call on it. */
  showFor(contactId) {
    this.contactId = contactId;
    this.setStatus("", "idle");
  }

  setStatus(text, state, href = "") {
    this.status.replaceChildren(text);
    this.status.dataset.state = state;
    this.status.dataset.code = "";
    const link = externalLink(href, "Open the Task in Salesforce");
    if (link) this.status.append(" ", link);
  }

  fields() {
    const task = this.task;
    const fields = {
      contact_id: this.contactId, task_sid: task.task_sid, call_sid: task.call_sid,
      duration: Math.round((Date.now() - task.pickedAt) / 1000),
      disposition: document.getElementById("log-disposition").value, notes: this.notes.value,
    };
    // The number makes the Task's subject ("Inbound call from +1…"); an email task has none.
    if (task.channel !== "email") fields.phone = task.caller;
    return fields;
  }

  async log() {
    // Save stays focusable while saving (a disabled button would drop focus to the page),
    // so it is marked aria-disabled and a second press is ignored.
    if (this.saving || !this.task || !this.contactId) return;
    this.saving = true;
    this.save.setAttribute("aria-disabled", "true");
    this.setStatus("Saving to Salesforce…", "saving");
    let result;
    try {
      result = await this.panel.call("log-call", this.fields());
    } catch (err) {
      result = { ok: false, status: 0, body: { message: err.message } };
    } finally {
      this.saving = false;
      this.save.removeAttribute("aria-disabled");
    }
    this.showResult(result);
  }

  showResult(result) {
    if (result.ok) {
      const text = result.body.created ? "Logged to Salesforce."
        : "Logged to Salesforce: the earlier log of this call was updated.";
      this.setStatus(text, "logged", result.body.task_url || "");
      announce(text);
      return;
    }
    const code = result.body.error || "";
    if (code === "not_linked") this.panel.showLink("not_linked");
    const reason = result.body.message || `the server answered HTTP ${result.status}.`;
    const text = `Not saved: ${reason}`;
    this.setStatus(text, "error");
    this.status.dataset.code = code;
    announce(text);
  }
}
