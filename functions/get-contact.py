"""get-contact: the Salesforce Contact and Account for the caller's phone number.

POST {Token, phone[, country]} → {cust_name, cust_record_url, cust_title, cust_acct_name,
cust_acct_type, cust_acct_num, cust_acct_sla, cust_acct_priority, cust_id, matches}
(also answers the original plugin's /get-contact-account-data).
"""
from sfdcflex.runtime.errors import HTTPError
from sfdcflex.phone import parse_phone
from sfdcflex.runtime.timing import ServerTiming


def handler(context, event, callback):
    services, timing = context.services, ServerTiming()
    try:
        agent = services.identify(event, timing)                     # 1. who asks: Flex token → IAM
        number = parse_phone(event.get("phone"), event.get("country") or "US")  # 2. digits only
        card = services.lookup.contact(agent.identity, number, timing)  # 3. cache, else Salesforce
    except HTTPError as error:
        return callback(timing.tag(error))                           # 400/403/404/502, JSON
    callback(None, timing.response(card))                            # 4. the card, + Server-Timing
