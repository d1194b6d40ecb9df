"""log-call: the call becomes a Task in Salesforce, on the caller's Contact or Lead, owned by the agent.

POST {Token, contact_id, call_sid?, task_sid?, direction?, duration?, disposition?, notes?,
phone?, subject?} → {task_id, task_url, created}. Logging the same call_sid (or task_sid) again
updates that Task (created: false) instead of making a second one.
"""
from sfdcflex.assembly import Services
from sfdcflex.call_log import parse_call_entry
from sfdcflex.errors import ANSWERABLE, answer_for
from sfdcflex.runtime.timing import ServerTiming


def handler(context, event, callback):
    services: Services = context.services
    timing = ServerTiming()
    try:
        agent = services.remembered_agent(event, timing)             # 1. who asks: the Flex token,
        if agent is None:                                            #    remembered, or asked of
            with context.slot_released():                            #    IAM with the slot free
                agent = services.identify(event, timing, client=context.client_address)
        entry = parse_call_entry(event)                              # 2. 400 before any Salesforce call
        logged = services.call_log.log(agent.identity, entry, timing)  # 3. find by CallObject, then write
    except ANSWERABLE as error:
        return callback(timing.tag(answer_for(error)))               # 400/403/404/422/502, JSON
    callback(None, timing.response(logged))                          # 4. {task_id, task_url, created}
