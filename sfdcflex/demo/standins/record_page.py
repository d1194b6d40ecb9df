"""The stand-in's record page (/lightning/r/{type}/{id}/view): the record's fields and its activities.

A real org shows the record in Lightning Experience; the demo's links (`cust_record_url`,
`task_url`) land here instead, so an agent can see a logged call arrive on the Contact.
"""
from __future__ import annotations

import html

from .sobjects import FIELDS, Org

SHOWN = {"Contact": ("Name", "Title", "Phone", "MobilePhone", "Email"),
         "Lead": ("Name", "Title", "Company", "Phone", "Email", "Status"),
         "Account": ("Name", "Type", "AccountNumber"),
         "Task": ("Subject", "Status", "ActivityDate", "CallType", "CallDurationInSeconds",
                  "CallDisposition", "CallObject", "Description", "WhoId", "WhatId")}
ACTIVITY_COLUMNS = ("ActivityDate", "Subject", "CallDisposition", "CallDurationInSeconds", "Description")


def _rows(record: dict, names: tuple[str, ...]) -> str:
    return "".join(f"<tr><th>{html.escape(n)}</th><td>{html.escape(str(record.get(n) or ''))}</td></tr>"
                   for n in names)


def _activities(org: Org, record_id: str) -> str:
    tasks = [t for t in org.all("Task") if record_id in (t.get("WhoId"), t.get("WhatId"))]
    if not tasks:
        return "<p>No activities yet.</p>"
    head = "".join(f"<th>{n}</th>" for n in ACTIVITY_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(t.get(n) or ''))}</td>"
                                    for n in ACTIVITY_COLUMNS) + "</tr>" for t in tasks)
    return f"<table class=activities><tr>{head}</tr>{body}</table>"


def render_record_page(org: Org, sobject: str, record_id: str) -> bytes | None:
    """The page's HTML, or None when there is no such record."""
    if sobject not in FIELDS or sobject not in SHOWN:
        return None
    record = org.get(sobject, record_id)
    if record is None:
        return None
    title = html.escape(f"{sobject}: {record.get('Name') or record.get('Subject') or record_id}")
    related = "" if sobject == "Task" else f"<h2>Activity history</h2>{_activities(org, record_id)}"
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
            "<style>body{font:15px system-ui,sans-serif;margin:2rem}th{text-align:left;"
            "padding-right:1rem}td,th{border-bottom:1px solid #ddd;padding:.3rem}</style></head>"
            f"<body><p>Salesforce stand-in (demo data)</p><h1>{title}</h1>"
            f"<table>{_rows(record, SHOWN[sobject])}</table>{related}</body></html>")
    return page.encode("utf-8")
