"""get-user: who the agent is in Salesforce. POST {Token} → {sfdc_username, display_name, ...}.

404 not_linked means the agent has not connected Salesforce yet (or the link died).
Also answers the original plugin's /get-username.
"""
from sfdcflex.runtime.errors import HTTPError
from sfdcflex.runtime.timing import ServerTiming


def handler(context, event, callback):
    services, timing = context.services, ServerTiming()
    try:
        agent = services.identify(event, timing, context.outside_the_slot)
        user = services.lookup.user(agent.identity, timing)
    except HTTPError as error:
        return callback(timing.tag(error))
    callback(None, timing.response({"flex_identity": agent.identity, **user}))
