"""The demo's data set: four accounts, fifteen contacts, two leads, three Flex agents and a task queue.

Phone numbers are written the many ways people type them into Salesforce, so the demo shows
the lookup matching on digits. US, UK and Australian numbers come from the ranges set aside
for fiction (NANP 555-01xx, Ofcom's drama numbers, ACMA's fictional numbers); the German
ones are made up, and so is every email address (on the reserved .example domain, RFC 2606).
"""
from __future__ import annotations

import hashlib

from .iam import IamStandIn
from .salesforce import SalesforceStandIn

ACCOUNTS = {
    "acme": ("Acme Corporation", "Customer - Direct", "CD451796", "Gold", "High"),
    "globex": ("Globex Europe Ltd", "Customer - Channel", "CC978213", "Platinum", "Medium"),
    "initech": ("Initech GmbH", "Technology Partner", "TP302918", "Silver", "Low"),
    "wallaby": ("Wallaby Freight Pty Ltd", "Customer - Direct", "CD735104", "Bronze", "Medium"),
}
# (name, account key, title, Phone, MobilePhone, indexed)
CONTACTS = [
    ("Jane Cooper (old record)", "initech", "Former Buyer", "4155550101", None, True),
    ("Jane Cooper", "acme", "VP Customer Success", "(415) 555-0101", None, True),
    ("Marcus Lee", "acme", "IT Director", "415.555.0102", None, True),
    ("Priya Natarajan", "acme", "Procurement Lead", "+1 212 555 0103", None, True),
    ("Daniel Ortiz", "acme", "Operations Manager", "1-646-555-0104", None, True),
    ("Sofia Rossi", "acme", "Field Engineer", None, "+1 (917) 555-0105", True),
    ("Oliver Bennett", "globex", "Head of Support", "+44 20 7946 0958", None, True),
    ("Amelia Clarke", "globex", "Account Manager", "020 7946 0959", None, True),
    ("Harry Walsh", "globex", "Logistics Coordinator", None, "07700 900123", True),
    ("Lukas Becker", "initech", "CTO", "+49 30 901820", None, True),
    ("Anna Schmidt", "initech", "Einkauf", "030 901821", "+49 151 2345 6789", True),
    ("Chloe Nguyen", "wallaby", "Fleet Manager", "+61 2 5550 4321", None, True),
    ("Jack Thompson", "wallaby", "Driver Lead", None, "0491 570 156", True),
    ("Riley Park", "acme", "New Customer Contact", "(415) 555-0109", None, False),
    # Two people behind Globex's switchboard: a shared number, so the panel offers a choice.
    ("Emily Clarke", "globex", "Service Desk Lead", "+44 20 7946 0958", None, True),
]
# Contact name -> Email, for chat and email tasks.
EMAILS = {"Priya Natarajan": "priya.natarajan@acme.example", "Jane Cooper": "jane.cooper@acme.example",
          "Oliver Bennett": "oliver.bennett@globex.example"}
# (name, company, title, Phone, Email): prospects, not yet Contacts.
LEADS = [
    ("Grace Hopper", "Hopper Compilers Inc", "Founder", "+1 303 555 0142", "grace@hopper.example"),
    ("Ravi Shah", "Shah Logistics", "Buyer", None, "ravi.shah@shahlogistics.example"),
]
# (Flex realm_user_id, display name, Salesforce username or None)
AGENTS = [
    ("alice@sfdcflex.demo", "Alice Johnson", "alice@sfdcflex.demo"),
    ("bob@sfdcflex.demo", "Bob Martinez", "bob@sfdcflex.demo"),
    # Carol's only Salesforce user has another username, so linking her is refused.
    ("carol@sfdcflex.demo", "Carol Davis", "carol.ops@sfdcflex.demo"),
]
TASKS = [
    {"caller": "+14155550101", "label": "US caller, stored as (415) 555-0101 (two records)"},
    {"caller": "+12125550103", "label": "US caller, stored as +1 212 555 0103"},
    {"caller": "+16465550104", "label": "US caller, stored as 1-646-555-0104"},
    {"caller": "+19175550105", "label": "US mobile, on MobilePhone only"},
    {"caller": "+442079460959", "label": "UK caller, stored as 020 7946 0959"},
    {"caller": "+442079460958", "label": "UK switchboard two contacts share: pick one"},
    {"caller": "+13035550142", "label": "A Lead, not a Contact yet"},
    {"caller": "priya.natarajan@acme.example", "channel": "email", "label": "Email task: found by address"},
    {"caller": "+4930901820", "label": "German caller, stored as +49 30 901820"},
    {"caller": "+61255504321", "label": "Australian caller, stored as +61 2 5550 4321"},
    {"caller": "+14155550109", "label": "Brand-new contact, not in the search index yet"},
    {"caller": "+13125550199", "label": "Unknown number"},
]


def seed_demo(sf: SalesforceStandIn, iam: IamStandIn) -> dict:
    """Fill the stand-ins with the demo data set; return what the demo panel shows."""
    account_ids = {key: sf.add_account(name, type=kind, account_number=number, sla=sla,
                                       priority=priority)
                   for key, (name, kind, number, sla, priority) in ACCOUNTS.items()}
    for name, account, title, phone, mobile, indexed in CONTACTS:
        sf.add_contact(name, account_id=account_ids[account], title=title, phone=phone,
                       mobile_phone=mobile, email=EMAILS.get(name), indexed=indexed)
    for name, company, title, phone, email in LEADS:
        sf.add_lead(name, company, title=title, phone=phone, email=email)
    agents = []
    for realm_user_id, name, sfdc_username in AGENTS:
        sf.add_user(sfdc_username, name)
        iam.add_agent(realm_user_id, name)
        agents.append({"realm_user_id": realm_user_id, "name": name,
                       "salesforce_username": sfdc_username,
                       "can_link": sfdc_username.lower() == realm_user_id.lower()})
    return {"agents": agents, "tasks": [_with_sids(task) for task in TASKS],
            "accounts": [values[0] for values in ACCOUNTS.values()]}


def _with_sids(task: dict) -> dict:
    """The task with made-up, stable Twilio SIDs: a TaskRouter task, and a call unless it is an email."""
    digest = hashlib.sha256(task["caller"].encode()).hexdigest()
    sids = {"task_sid": "WT" + digest[:32]}
    if task.get("channel") != "email":
        sids["call_sid"] = "CA" + digest[32:]
    return {**task, **sids}
