"""auth: start linking the agent's Salesforce user (OAuth web-server flow with PKCE).

POST {Token[, origin]} → {"authorize_url": ...}; a browser opening /auth?Token=... in a popup
is redirected (302) to the same Salesforce login page. With ORIGINAL_PLUGIN_LOGIN=true, the
original plugin's popup (/auth with no Token) is redirected to the login page of its own flow.
"""
from sfdcflex.assembly import Services
from sfdcflex.errors import ANSWERABLE, answer_for
from sfdcflex.runtime import Response
from sfdcflex.runtime.timing import ServerTiming


def _redirect(url: str) -> Response:
    # 302 and no-store, not the original's 301: browsers keep a 301 indefinitely, so a changed
    # setting (client id, Flex URL) would not reach an agent whose browser has cached it.
    return Response(status_code=302).append_header("Location", url).append_header("Cache-Control", "no-store")


def handler(context, event, callback):
    services: Services = context.services
    timing = ServerTiming()
    if "Token" not in event and services.linker.original_login:  # the original plugin's popup
        return callback(None, _redirect(services.linker.original_authorize_url()))
    popup = "text/html" in str(event["request"]["headers"].get("accept", ""))  # a browser navigating
    try:
        # A popup has only its URL to carry the Flex token.
        agent = services.remembered_agent(event, timing, token_in_url=popup)
        if agent is None:
            with context.slot_released():  # waiting for IAM is not this function's work
                agent = services.identify(event, timing, token_in_url=popup,
                                           client=context.client_address)
        url = services.linker.authorize_url(agent.identity, event.get("origin"))
    except ANSWERABLE as error:
        return callback(timing.tag(answer_for(error)))
    if popup:
        return callback(None, _redirect(url))
    callback(None, timing.response({"authorize_url": url}))
