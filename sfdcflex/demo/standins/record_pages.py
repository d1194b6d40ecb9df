"""The Salesforce stand-in's pages for a person: home, login, and Contact and Account records.

The agent panel's links lead here: Lightning record URLs (`/lightning/r/Contact/{id}/view`, and
for Accounts, Leads and the Tasks log-call writes) and the instance's home page. A Contact's,
Lead's or Account's page lists its logged calls (Tasks whose WhoId or WhatId it is). As in Salesforce, a page shows the records to the user of the
browser session. The session cookie is set when that user logs in: on the consent page (Allow)
or on the login form here; without a session a record URL sends the browser to log in first
and then back to the record (`startURL`, as Salesforce's own login does).
"""
from __future__ import annotations

import collections
import datetime
import html
import re
import secrets
import threading
import urllib.parse
from http.cookies import CookieError, SimpleCookie
from typing import Callable

from .base import Request, Response
from .consent_page import page_html, user_choices
from .sobjects import Org

HTML = "text/html;charset=UTF-8"
NO_STORE = {"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"}
# Cookies ignore the port, so on 127.0.0.1 a plain "sid" could clobber another local app's.
SESSION_COOKIE = "sfdcflex_sid"
MAX_SESSIONS = 256
_RECORD_PATH = re.compile(r"/lightning/r/(Contact|Account|Lead|Task)/(\w{15}|\w{18})/view/?")

PageHandler = Callable[[Request], Response]


class BrowserSessions:
    """Which user each browser session belongs to; the oldest is forgotten past `limit`."""

    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self.limit = limit
        self._users: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._lock = threading.Lock()

    def open(self, user_id: str) -> str:
        """Start a session for `user_id` and return its Set-Cookie header value."""
        session_id = secrets.token_urlsafe(24)
        with self._lock:
            self._users[session_id] = user_id
            while len(self._users) > self.limit:
                self._users.popitem(last=False)
        return f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax"

    def user_id(self, request: Request) -> str | None:
        cookies = SimpleCookie()
        try:
            cookies.load(request.header("cookie"))
        except CookieError:
            return None
        morsel = cookies.get(SESSION_COOKIE)
        with self._lock:
            return self._users.get(morsel.value) if morsel else None


class RecordPages:
    """Serves `/` (home or login) and the record pages from the stand-in's org."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.sessions = BrowserSessions()
        # Where "Back to the agent panel" leads; the demo sets it, tests may leave it unset.
        self.panel_url: str | None = None

    def route(self, path: str) -> tuple[str, PageHandler] | None:
        if path == "/":
            return "home", self._home
        if _RECORD_PATH.fullmatch(path):
            return "record_page", self._record
        return None

    def sign_in(self, response: Response, user_id: str) -> Response:
        """`response`, now also starting a browser session for `user_id`."""
        response.headers["Set-Cookie"] = self.sessions.open(user_id)
        return response

    # -- pages --------------------------------------------------------------------------------
    def _home(self, request: Request) -> Response:
        if request.method == "POST":
            return self._log_in(request.form())
        if request.method not in ("GET", "HEAD"):
            return _not_allowed("GET, HEAD, POST")
        user = self._session_user(request)
        if user is None:
            return self._login_form(request.query.get("startURL", "/"))
        accounts = "".join(f"<li>{self._link('Account', a)}<span class=\"muted\">"
                           f"{html.escape(a.get('Type') or '')}</span></li>"
                           for a in self.org.all("Account"))
        body = (f"{self._session_bar(user)}<h1>Accounts</h1>"
                f'<ul class="records">{accounts}</ul>')
        return _page(200, "Home | Salesforce", body)

    def _record(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _not_allowed("GET, HEAD")
        user = self._session_user(request)
        if user is None:
            query = urllib.parse.urlencode({"startURL": request.path})
            return Response(302, b"", HTML, {"Location": f"/?{query}", **NO_STORE})
        sobject, wanted = _RECORD_PATH.fullmatch(request.path).groups()
        record = self._find(sobject, wanted)
        if record is None:
            body = (f"{self._session_bar(user)}<h1>Record not found</h1>"
                    f"<p>No {sobject} has the id <code>{html.escape(wanted)}</code>. It may have "
                    "been deleted, or the link is wrong.</p>")
            return _page(404, "Record not found | Salesforce", body)
        render = {"Contact": self._contact, "Account": self._account,
                  "Lead": self._lead, "Task": self._task}[sobject]
        title, body = render(record)
        return _page(200, f"{title} | {sobject} | Salesforce", self._session_bar(user) + body)

    def _contact(self, contact: dict) -> tuple[str, str]:
        account = self.org.get("Account", contact.get("AccountId") or "")
        fields = [("Title", _text(contact.get("Title"))),
                  ("Account", self._link("Account", account) if account else "—"),
                  ("Phone", _text(contact.get("Phone"))),
                  ("Mobile", _text(contact.get("MobilePhone"))),
                  ("Email", _text(contact.get("Email"))),
                  ("Last modified", _when(contact.get("LastModifiedDate")))]
        body = (f'<p class="muted">Contact</p><h1>{html.escape(contact["Name"])}</h1>'
                f"{_fields(fields)}{self._activities(contact['Id'])}")
        return contact["Name"], body

    def _lead(self, lead: dict) -> tuple[str, str]:
        fields = [("Title", _text(lead.get("Title"))), ("Company", _text(lead.get("Company"))),
                  ("Phone", _text(lead.get("Phone"))), ("Email", _text(lead.get("Email"))),
                  ("Lead status", _text(lead.get("Status"))),
                  ("Last modified", _when(lead.get("LastModifiedDate")))]
        body = (f'<p class="muted">Lead</p><h1>{html.escape(lead["Name"])}</h1>'
                f"{_fields(fields)}{self._activities(lead['Id'])}")
        return lead["Name"], body

    def _task(self, task: dict) -> tuple[str, str]:
        who = self.org.get("Contact", task.get("WhoId") or "") or self.org.get("Lead", task.get("WhoId") or "")
        what = self.org.get("Account", task.get("WhatId") or "")
        owner = self.org.get("User", task.get("OwnerId") or "")
        kind = "Lead" if who and who["Id"].startswith("00Q") else "Contact"
        fields = [("Name", self._link(kind, who) if who else "—"),
                  ("Related to", self._link("Account", what) if what else "—"),
                  ("Status", _text(task.get("Status"))), ("Date", _text(task.get("ActivityDate"))),
                  ("Call type", _text(task.get("CallType"))),
                  ("Duration", _duration(task.get("CallDurationInSeconds"))),
                  ("Call result", _text(task.get("CallDisposition"))),
                  ("Comments", _text(task.get("Description"))),
                  ("Call id", _text(task.get("CallObject"))),
                  ("Assigned to", _text(owner and owner["Name"]))]
        subject = task.get("Subject") or "Task"
        return subject, f'<p class="muted">Task</p><h1>{html.escape(subject)}</h1>{_fields(fields)}'

    def _activities(self, record_id: str) -> str:
        """The record's logged calls, newest first: what an agent checks after Log call."""
        tasks = sorted((t for t in self.org.all("Task") if record_id in (t.get("WhoId"), t.get("WhatId"))),
                       key=lambda t: t.get("LastModifiedDate") or "", reverse=True)
        items = "".join(f"<li>{self._link('Task', t, t.get('Subject') or 'Task')}"
                        f'<span class="muted">{_text(t.get("ActivityDate"))} · '
                        f"{_text(t.get('CallDisposition'))} · {_duration(t.get('CallDurationInSeconds'))}"
                        f"</span><span>{_text(t.get('Description'))}</span></li>" for t in tasks)
        return (f"<h2>Activity history ({len(tasks)})</h2>"
                f'<ul class="records">{items or "<li>No logged calls yet.</li>"}</ul>')

    def _account(self, account: dict) -> tuple[str, str]:
        fields = [("Type", _text(account.get("Type"))),
                  ("Account number", _text(account.get("AccountNumber"))),
                  ("SLA", _text(account.get("SLA__c"))),
                  ("Priority", _text(account.get("CustomerPriority__c"))),
                  ("Phone", _text(account.get("Phone")))]
        contacts = [c for c in self.org.all("Contact") if c.get("AccountId") == account["Id"]]
        items = "".join(f"<li>{self._link('Contact', c)}<span class=\"muted\">"
                        f"{_text(c.get('Title'))} · {_text(c.get('Phone') or c.get('MobilePhone'))}"
                        f"</span></li>" for c in contacts)
        body = (f'<p class="muted">Account</p><h1>{html.escape(account["Name"])}</h1>'
                f"{_fields(fields)}<h2>Contacts ({len(contacts)})</h2>"
                f'<ul class="records">{items or "<li>No contacts.</li>"}</ul>'
                f"{self._activities(account['Id'])}")
        return account["Name"], body

    # -- login ----------------------------------------------------------------------------------
    def _login_form(self, start_url: str, error: str | None = None) -> Response:
        users = [{"username": u["Username"], "display_name": u["Name"]} for u in self.org.all("User")]
        notice = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        body = (f"<h1>Log in</h1>{notice}<p>Log in to see Salesforce records.</p>"
                f'<form method="post" action="/">'
                f'<input type="hidden" name="startURL" value="{html.escape(_local_path(start_url))}">'
                f"<fieldset><legend>Log in as</legend>{user_choices(users)}</fieldset>"
                f'<div class="actions"><button class="allow" type="submit">Log in</button></div>'
                f"</form>")
        return _page(200, "Login | Salesforce", body)

    def _log_in(self, form: dict[str, str]) -> Response:
        wanted = form.get("username", "").strip().lower()
        user = next((u for u in self.org.all("User") if u["Username"].lower() == wanted), None)
        if user is None:
            return self._login_form(form.get("startURL", "/"), "Choose a Salesforce user to log in as.")
        location = _local_path(form.get("startURL", "/"))
        return self.sign_in(Response(303, b"", HTML, {"Location": location, **NO_STORE}), user["Id"])

    # -- parts ----------------------------------------------------------------------------------
    def _session_user(self, request: Request) -> dict | None:
        user_id = self.sessions.user_id(request)
        return self.org.get("User", user_id) if user_id else None

    def _find(self, sobject: str, wanted: str) -> dict | None:
        # Salesforce accepts the 15-character id (case-sensitive) as well as the 18-character one.
        return next((record for record in self.org.all(sobject)
                     if record["Id"] == wanted or record["Id"][:15] == wanted), None)

    def _session_bar(self, user: dict) -> str:
        back = (f'<a href="{html.escape(self.panel_url)}">Back to the agent panel</a>'
                if self.panel_url else "")
        return (f'<nav class="session" aria-label="Session"><span>Logged in as '
                f'{html.escape(user["Name"])} ({html.escape(user["Username"])})</span>'
                f'<span><a href="/">Home</a>{" · " + back if back else ""}</span></nav>')

    @staticmethod
    def _link(sobject: str, record: dict, text: str | None = None) -> str:
        return (f'<a href="/lightning/r/{sobject}/{html.escape(record["Id"])}/view">'
                f'{html.escape(text or record["Name"])}</a>')


def _local_path(start_url: str) -> str:
    """`start_url` if it is a path on this server, else "/": login must not redirect off-site."""
    if start_url.startswith("/") and not start_url.startswith("//") and "\\" not in start_url:
        return start_url
    return "/"


def _text(value: object) -> str:
    return html.escape(str(value)) if value not in (None, "") else "—"


def _duration(seconds: object) -> str:
    """CallDurationInSeconds as a person reads it: 95 -> "1 min 35 s"."""
    if not isinstance(seconds, int) or seconds < 0:
        return "—"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _when(stamp: str | None) -> str:
    """A REST datetime (2024-05-14T09:21:07.000+0000) as a person reads it: 2024-05-14 09:21 UTC."""
    try:
        moment = datetime.datetime.strptime(stamp or "", "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return _text(stamp)
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _fields(pairs: list[tuple[str, str]]) -> str:
    return '<dl class="fields">' + "".join(f"<dt>{name}</dt><dd>{value}</dd>"
                                           for name, value in pairs) + "</dl>"


def _page(status: int, title: str, body: str) -> Response:
    return Response(status, page_html(title, body, wide=True), HTML, dict(NO_STORE))


def _not_allowed(allowed: str) -> Response:
    body = page_html("Method not allowed | Salesforce", "<h1>Method not allowed</h1>")
    return Response(405, body, HTML, {"Allow": allowed, **NO_STORE})
