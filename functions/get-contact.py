"""get-contact: the Salesforce Contact (or Lead) and Account for the caller's phone number or email.

POST {Token, phone[, country] | email[, contact_id]} → {cust_name, cust_record_url, cust_title,
cust_acct_name, cust_acct_type, cust_acct_num, cust_acct_sla, cust_acct_priority, cust_id,
cust_type, matches[, candidates]}; a Lead's card has cust_company instead of the cust_acct_*
fields. contact_id picks one of the candidates. Also answers the original plugin's
/get-contact-account-data.
"""
from sfdcflex.assembly import Services
from sfdcflex.cards import parse_record_id
from sfdcflex.email_address import parse_email
from sfdcflex.errors import ANSWERABLE, answer_for
from sfdcflex.phone import parse_phone
from sfdcflex.runtime.errors import BadRequest
from sfdcflex.runtime.timing import ServerTiming


def _caller(event):
    """A chat or email task carries an address; a call, a phone number (digits only from here on)."""
    if event.get("phone") is None and event.get("email") is None:
        raise BadRequest("phone (a call) or email (a chat or email task) is required", code="invalid_phone")
    if event.get("phone") is None:
        return parse_email(event["email"])
    return parse_phone(event["phone"], event.get("country") or "US")


def handler(context, event, callback):
    services: Services = context.services
    timing = ServerTiming()
    try:
        agent = services.remembered_agent(event, timing)              # 1. who: the Flex token,
        if agent is None:                                             #    remembered, or asked of
            with context.slot_released():                             #    IAM with the slot free
                agent = services.identify(event, timing, client=context.client_address)
        caller = _caller(event)                                       # 2. checked before any query
        pick = parse_record_id(event["contact_id"]) if event.get("contact_id") else None
        card = services.lookup.contact_json(agent.identity, caller, timing, pick)  # 3. cache, else
    except ANSWERABLE as error:                                       #    Salesforce; as JSON
        return callback(timing.tag(answer_for(error)))               # 400/403/404/502, JSON
    callback(None, timing.json_response(card))                       # 4. the card, + Server-Timing
