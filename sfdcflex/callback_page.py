"""The small HTML page the OAuth redirect lands on: says what happened and tells the opener.

When the page was opened as a popup by the agent panel (or a Flex plugin), it posts the
outcome to `window.opener` with an explicit target origin (never "*"), so no other page can
read it, then closes itself.
"""
from __future__ import annotations

import json
import secrets

from .runtime import Response

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="{nonce}">
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; display: grid; place-items: center;
       min-height: 100vh; background: #f4f6f9; color: #1f2430; }}
main {{ background: #fff; padding: 2rem 2.5rem; border-radius: 12px; max-width: 28rem;
       box-shadow: 0 2px 12px rgba(0,0,0,.08); border-top: 4px solid {colour}; }}
h1 {{ font-size: 1.25rem; margin: 0 0 .5rem; }}
</style></head>
<body><main><h1>{title}</h1><p>{text}</p>{code}<p><small>You can close this window.</small></p></main>
{script}</body></html>
"""
_SCRIPT = """<script nonce="{nonce}">
(function () {{
  var message = {message};
  if (window.opener) {{
    window.opener.postMessage(message, {target});
    setTimeout(function () {{ window.close(); }}, 1500);
  }}
}})();
</script>
"""


# What html.escape does, without importing the html package (its entity table slows start-up).
_HTML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"})


def _script_json(value: object) -> str:
    # JSON inside <script>: escape "<" so a value can never close the script element.
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def callback_page(status: int, title: str, text: str, message: dict, target_origin: str | None) -> Response:
    """An HTML answer for the popup, with a strict Content-Security-Policy; it posts `message`
    to its opener only at `target_origin`, and to nobody when that is None."""
    nonce = secrets.token_urlsafe(16)
    script = "" if target_origin is None else _SCRIPT.format(
        nonce=nonce, message=_script_json({"source": "sfdcflex", **message}),
        target=_script_json(target_origin))
    body = _PAGE.format(title=title.translate(_HTML_ESCAPES), text=text.translate(_HTML_ESCAPES), nonce=nonce,
                        colour="#2e844a" if status < 400 else "#ba0517", script=script,
                        code=f"<p><small>Error: {str(message['error']).translate(_HTML_ESCAPES)}</small></p>"
                        if message.get("error") else "")
    return (Response(body, status)
            .append_header("Content-Type", "text/html; charset=utf-8")
            .append_header("Content-Security-Policy",
                           f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                           # No page may frame it: a framed page could be made to look like ours.
                           "frame-ancestors 'none'")
            .append_header("Cache-Control", "no-store")
            .append_header("Referrer-Policy", "no-referrer"))
