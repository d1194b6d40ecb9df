"""oauth-callback: finish linking the agent's Salesforce user.

GET ?code&state — Salesforce's redirect: answers a small HTML page that tells the popup's opener.
POST {Token, code[, state]} — a code relayed by the original plugin (/get-access-token): JSON.
"""
from sfdcflex.assembly import Services
from sfdcflex.callback_page import callback_page
from sfdcflex.errors import ANSWERABLE, answer_for
from sfdcflex.linking import Declined
from sfdcflex.runtime.timing import ServerTiming


def handler(context, event, callback):
    services: Services = context.services
    timing = ServerTiming()
    relayed = "Token" in event
    try:
        if event.get("error"):  # ?error=access_denied: the agent pressed Deny on Salesforce's page
            raise Declined.from_redirect(str(event["error"]), str(event.get("error_description") or ""))
        identity = None
        if relayed:  # the original plugin relays a code with its Flex token
            agent = services.remembered_agent(event, timing)
            if agent is None:
                with context.slot_released():  # waiting for IAM is not this function's work
                    agent = services.identify(event, timing, client=context.client_address)
            identity = agent.identity
        link = services.linker.complete(event.get("code"), event.get("state"), timing, identity=identity)
    except ANSWERABLE as failure:
        error = answer_for(failure)
        if relayed:
            return callback(timing.tag(error))
        # Only a valid state says which panel started this: without one, anyone may have sent
        # the browser here with words of their choosing, so the page tells no opener anything.
        return callback(None, callback_page(
            error.status, "Salesforce not connected", error.message,
            {"type": "link_failed", "error": error.code, "message": error.message},
            services.linker.origin_of(event.get("state"), services.flex_origin)))
    if relayed:
        return callback(None, timing.response({"linked": True, "sfdc_username": link.sfdc_username,
                                               "display_name": link.display_name}))
    callback(None, callback_page(
        200, "Salesforce connected", f"Logged into Salesforce as {link.display_name} ({link.sfdc_username}).",
        {"type": "linked", "sfdc_username": link.sfdc_username, "display_name": link.display_name},
        link.origin or services.flex_origin))
