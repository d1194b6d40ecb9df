"""auth: start linking the agent's Salesforce user (OAuth web-server flow with PKCE).

POST {Token[, origin]} → {"authorize_url": ...}; a browser opening /auth?Token=... in a popup
(as the original plugin does) is redirected (302) to the same Salesforce login page.
"""
from sfdcflex.runtime.errors import HTTPError
from sfdcflex.runtime import Response
from sfdcflex.runtime.timing import ServerTiming


def handler(context, event, callback):
    services, timing = context.services, ServerTiming()
    popup = "text/html" in str(event["request"]["headers"].get("accept", ""))  # a browser navigating
    try:
        agent = services.identify(event, timing, token_in_url=popup)  # a popup has only its URL
        url = services.linker.authorize_url(agent.identity, event.get("origin"))
    except HTTPError as error:
        return callback(timing.tag(error))
    if popup:
        return callback(None, Response(status_code=302).append_header("Location", url)
                        .append_header("Cache-Control", "no-store"))
    callback(None, timing.response({"authorize_url": url}))
