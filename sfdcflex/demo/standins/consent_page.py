"""The Salesforce stand-in's login/consent page, and a client that submits it like a person.

The page is self-contained HTML and CSS (one inline script, no external resources): the
demo Salesforce users as a list to pick from, the scopes the app asks for, and Allow / Deny
buttons. The form posts back to the authorize endpoint with the original OAuth
parameters as hidden fields.
"""
from __future__ import annotations

import html
import http.client
import urllib.parse
import urllib.request
from html.parser import HTMLParser

# The authorize parameters the form carries through the login step unchanged.
OAUTH_PARAMS = ("response_type", "client_id", "redirect_uri", "state", "scope",
                "code_challenge", "code_challenge_method")
SCOPE_WORDS = {
    "api": "Manage user data via APIs (api)",
    "refresh_token": "Perform requests at any time (refresh_token, offline_access)",
    "offline_access": "Perform requests at any time (refresh_token, offline_access)",
    "id": "Access the identity URL service (id, profile, email, address, phone)",
    "openid": "Access unique user identifiers (openid)",
    "full": "Full access (full)",
}

# One look for every page of the stand-in (login, consent, records), so they read as one app.
# WCAG 2.2 AA contrast, computed with the WCAG relative-luminance formula: text #181b25 on
# #eef1f6 15.2:1; muted #5c6370 on #fff 6.1:1, on #eef1f6 5.3:1; links and the focus ring
# #0b5cab on #fff 6.7:1, on #eef1f6 5.9:1 (non-text needs 3:1); white on #0b5cab 6.7:1; error
# #8c1c13 on #fdecea 8.0:1; control borders #7b8794 on #fff 3.7:1.
STYLE = """
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif;background:#eef1f6;color:#181b25}main{max-width:420px;margin:48px auto;
background:#fff;border-radius:8px;box-shadow:0 2px 12px rgba(20,30,60,.12);padding:28px 32px}
main.wide{max-width:680px}.brand{font-weight:700;color:#0b5cab;letter-spacing:.02em;
margin:0 0 4px}.stand-in{font-size:12px;color:#5c6370;margin:0 0 20px}h1{font-size:19px;
margin:0 0 12px}h2{font-size:16px;margin:24px 0 8px}a{color:#0b5cab}ul.scopes{margin:0 0 18px;
padding-left:18px;color:#3b3f4a}fieldset{border:1px solid #7b8794;border-radius:6px;
margin:0 0 18px;padding:10px 14px}legend{font-weight:600;padding:0 4px}label.user{display:flex;
gap:10px;align-items:center;padding:7px 0;cursor:pointer}label.user small,.muted{display:block;
color:#5c6370}.error{background:#fdecea;color:#8c1c13;border-radius:6px;padding:8px 12px;
margin:0 0 14px}.actions{display:flex;gap:12px}button{font:inherit;border-radius:6px;
padding:8px 20px;cursor:pointer;border:1px solid #0b5cab}button.allow{background:#0b5cab;
color:#fff}button.deny{background:#fff;color:#0b5cab}code{background:#f3f4f7;padding:1px 4px;
border-radius:3px}:focus-visible{outline:3px solid #0b5cab;outline-offset:2px}
.session{display:flex;flex-wrap:wrap;justify-content:space-between;gap:4px 16px;font-size:13px;
color:#5c6370;border-bottom:1px solid #e1e5ec;padding:0 0 10px;margin:0 0 18px}
dl.fields{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:6px 16px;margin:0}
dl.fields dt{color:#5c6370}dl.fields dd{margin:0;overflow-wrap:anywhere}
ul.records{list-style:none;margin:0;padding:0}ul.records li{padding:8px 0;
border-top:1px solid #e1e5ec}
@media (max-width:480px){main{margin:0;border-radius:0;padding:20px}}
"""


def page_html(title: str, body: str, *, wide: bool = False, script: str = "") -> bytes:
    """A stand-in page: the shared look, `body` (already escaped HTML) and an optional script."""
    main = '<main class="wide">' if wide else "<main>"
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body>{main}<p class=\"brand\">salesforce</p>"
            f"<p class=\"stand-in\">Local stand-in for Salesforce (demo)</p>"
            f"{body}</main>{script}</body></html>").encode("utf-8")


# Escape cancels, as in any dialog (WAI-ARIA Authoring Practices, dialog pattern): it presses
# Deny, which needs no user chosen (formnovalidate).
_ESCAPE_DENIES = ("<script>document.addEventListener('keydown', function (event) {"
                  " if (event.key === 'Escape') document.querySelector('button.deny').click(); });"
                  "</script>")


def user_choices(users: list[dict]) -> str:
    """Radio buttons to pick one of `users`; choosing one is required to submit."""
    return "".join(
        f'<label class="user"><input type="radio" name="username" required '
        f'value="{html.escape(user["username"])}">'
        f'<span>{html.escape(user["display_name"])}'
        f'<small>{html.escape(user["username"])}</small></span></label>'
        for user in users)


def render_login_page(params: dict[str, str], users: list[dict], app_name: str,
                      error: str | None = None) -> bytes:
    """The login/consent page for one authorize request, listing `users` to pick from."""
    scopes = dict.fromkeys(SCOPE_WORDS.get(word, word) for word in
                           params.get("scope", "api refresh_token").split())
    hidden = "".join(f'<input type="hidden" name="{name}" value="{html.escape(params[name])}">'
                     for name in OAUTH_PARAMS if params.get(name) is not None)
    notice = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    # Allow comes first in the form: Enter submits with a form's first submit button
    # (HTML Standard, "implicit submission"), so Enter allows.
    body = (f"<h1>Allow access?</h1>{notice}"
            f"<p><strong>{html.escape(app_name)}</strong> is asking to:</p>"
            f'<ul class="scopes">{"".join(f"<li>{html.escape(s)}</li>" for s in scopes)}</ul>'
            f'<form method="post" action="/services/oauth2/authorize">{hidden}'
            f"<fieldset><legend>Log in as</legend>{user_choices(users)}</fieldset>"
            f'<div class="actions"><button class="allow" type="submit" name="decision" '
            f'value="allow">Allow</button><button class="deny" type="submit" name="decision" '
            f'value="deny" formnovalidate>Deny</button></div></form>'
            f'<p class="muted">Enter allows; Escape or Deny refuses.</p>')
    return page_html("Login | Salesforce", body, script=_ESCAPE_DENIES)


def render_error_page(error: str, description: str) -> bytes:
    """The page Salesforce shows when it cannot even redirect back (bad client, bad URI)."""
    query = urllib.parse.urlencode({"error": error, "error_description": description})
    body = (f"<h1>OAuth Error</h1><p>We can't authorize you because of an OAuth error. "
            f"For more information, contact your Salesforce administrator.</p>"
            f"<p><code>{html.escape(query)}</code></p>")
    return page_html("OAuth Error | Salesforce", body)


class _FormReader(HTMLParser):
    """Collects the first form's action and its hidden inputs from the login page."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self.action:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden":
            self.hidden[values.get("name", "")] = values.get("value", "")


def submit_consent(authorize_url: str, username: str, allow: bool = True) -> str:
    """Open the login page, pick `username`, press Allow or Deny; return the redirect Location.

    Raises RuntimeError (with the page's status) when the page does not redirect back,
    e.g. for an unknown user or a refused authorize request.
    """
    with urllib.request.urlopen(authorize_url, timeout=10) as page:
        reader = _FormReader()
        reader.feed(page.read().decode("utf-8"))
        page_url = page.geturl()
    target = urllib.parse.urlsplit(urllib.parse.urljoin(page_url, reader.action))
    form = dict(reader.hidden, username=username, decision="allow" if allow else "deny")
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    try:
        connection.request("POST", target.path, urllib.parse.urlencode(form),
                           {"Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        response.read()
        location = response.getheader("Location")
    finally:
        connection.close()
    if response.status != 302 or not location:
        raise RuntimeError(f"login page answered {response.status} instead of redirecting")
    return location
