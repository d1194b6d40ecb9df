"""unlink: disconnect the agent's Salesforce user. POST {Token} → {"unlinked": true|false}.

Revokes the tokens at Salesforce, deletes them from the store and drops the agent's cache.
"""
from sfdcflex.runtime.errors import HTTPError
from sfdcflex.runtime.timing import ServerTiming


def handler(context, event, callback):
    services, timing = context.services, ServerTiming()
    try:
        agent = services.identify(event, timing, context.outside_the_slot)
        with timing.span("sfdc-revoke", "Salesforce revoke + token store delete"):
            unlinked = services.keeper.unlink(agent.identity)
        services.lookup.forget(agent.identity)
    except HTTPError as error:
        return callback(timing.tag(error))
    callback(None, timing.response({"unlinked": unlinked}))
