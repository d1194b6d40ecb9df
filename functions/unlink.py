"""unlink: disconnect the agent's Salesforce user. POST {Token} → {"unlinked": true|false}.

Revokes the tokens at Salesforce, deletes them from the store and drops the agent's cache.
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
        with timing.span("sfdc-revoke", "Salesforce revoke + token store delete"):
            unlinked = services.keeper.unlink(agent.identity)
        services.lookup.forget(agent.identity)
    except ANSWERABLE as error:
        return callback(timing.tag(answer_for(error)))
    callback(None, timing.response({"unlinked": unlinked}))
