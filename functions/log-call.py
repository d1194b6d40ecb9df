"""log-call: the call becomes a Task in Salesforce, on the caller's Contact or Lead, owned by the agent.

POST {Token, contact_id, call_sid?, task_sid?, direction?, duration?, disposition?, notes?,
phone?, subject?} → {task_id, task_url, created}. Logging the same call_sid (or task_sid) again
updates that Task (created: false) instead of making a second one.
"""
from sfdcflex.call_log import parse_call_entry
from sfdcflex.runtime.errors import HTTPError
from sfdcflex.runtime.timing import ServerTiming


def handler(context, event, callback):
    services, timing = context.services, ServerTiming()
    try:
        agent = services.identify(event, timing, context.outside_the_slot)  # 1. who asks: Flex token → IAM
        entry = parse_call_entry(event)                              # 2. 400 before any Salesforce call
        logged = services.call_log.log(agent.identity, entry, timing)  # 3. find by CallObject, then write
    except HTTPError as error:
        return callback(timing.tag(error))                           # 400/403/404/422/502, JSON
    callback(None, timing.response(logged))                          # 4. {task_id, task_url, created}
