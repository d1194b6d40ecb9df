"""get-user: who the agent is in Salesforce. POST {Token} → {sfdc_username, display_name, ...}.

404 not_linked means the agent has not connected Salesforce yet (or the link died).
Also answers the original plugin's /get-username.
"""
from sfdcflex.assembly import Services
from sfdcflex.errors import ANSWERABLE, answer_for
from sfdcflex.runtime.timing import ServerTiming


def handler(context, event, callback):
    services: Services = context.services
    timing = ServerTiming()
    try:
        agent = services.remembered_agent(event, timing)
        if agent is None:
            with context.slot_released():  # waiting for IAM is not this function's work
                agent = services.identify(event, timing, client=context.client_address)
        user = services.lookup.user(agent.identity, timing)
    except ANSWERABLE as error:
        return callback(timing.tag(answer_for(error)))
    callback(None, timing.response({"flex_identity": agent.identity, **user}))
