"""The audit trail: one line per link, re-link, unlink and link Salesforce dropped, saying who,
which Salesforce user, when and from which instance, in text and JSON; each counted."""
from __future__ import annotations

import json
import logging

import pytest

from sfdcflex.audit import LinkAudit
from sfdcflex.clients.errors import InvalidGrant, SessionExpired
from sfdcflex.errors import NotLinked
from sfdcflex.keeper import TokenKeeper
from sfdcflex.runtime.logs import JsonFormatter
from sfdcflex.runtime.metrics import Registry
from sfdcflex.runtime.timing import ServerTiming
from sfdcflex.store import JsonFileTokenStore
from tests.support.prometheus import parse, samples

ALICE = "alice@example.com"
NOON = 1765022400.0   # 2025-12-06 12:00:00 UTC
AT = "2025-12-06T12:00:00Z"


class DeadGrantSalesforce:
    """Every session has expired and every refresh token is dead: the link gets dropped."""

    def __init__(self) -> None:
        self.revoked: list[str] = []

    def userinfo(self, access_token: str) -> dict:
        raise SessionExpired("expired")

    def refresh(self, refresh_token: str) -> dict:
        raise InvalidGrant("Salesforce refused the refresh token; connect Salesforce again")

    def revoke(self, refresh_token: str) -> None:
        self.revoked.append(refresh_token)


@pytest.fixture
def audited(tmp_path):
    registry = Registry()
    audit = LinkAudit(registry, instance="host-a/4242", clock=lambda: NOON)
    keeper = TokenKeeper(JsonFileTokenStore(tmp_path / "tokens.json"), DeadGrantSalesforce(), audit)
    return keeper, registry


def test_link_relink_unlink_and_a_dropped_link_each_write_one_line_and_count(audited, caplog):
    keeper, registry = audited
    caplog.set_level(logging.INFO, logger="sfdcflex")
    keeper.link(ALICE, "access-1", "refresh-1", sfdc_user="Alice@Example.com")
    keeper.link(ALICE, "access-2", "refresh-2", sfdc_user="Alice@Example.com")
    keeper.unlink(ALICE)
    keeper.link(ALICE, "access-3", "refresh-3", sfdc_user="Alice@Example.com")
    with pytest.raises(NotLinked):
        keeper.call(ALICE, keeper.salesforce.userinfo, ServerTiming(), "sfdc", "userinfo")
    lines = [m for m in caplog.messages if m.startswith("audit ")]
    assert lines == [f"audit {event} flex_user={ALICE} sfdc_user=Alice@Example.com instance=host-a/4242 at={AT}"
                     for event in ("link", "relink", "unlink", "link", "dropped")]
    families = parse(registry.exposition().decode())
    assert samples(families, "sfdcflex_link_events_total") == {
        (("event", "link"),): 2, (("event", "relink"),): 1, (("event", "unlink"),): 1, (("event", "dropped"),): 1}
    assert samples(families, "sfdcflex_token_refreshes_total") == {(("outcome", "ok"),): 0,
                                                                   (("outcome", "failed"),): 1}


def test_an_unlink_another_instance_linked_names_the_username_the_link_had_to_have(tmp_path, caplog):
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    TokenKeeper(store, DeadGrantSalesforce(), LinkAudit(instance="a/1")).link(ALICE, "a", "r", sfdc_user=ALICE)
    caplog.set_level(logging.INFO, logger="sfdcflex")
    TokenKeeper(store, DeadGrantSalesforce(), LinkAudit(instance="b/2", clock=lambda: NOON)).unlink(ALICE)
    assert f"audit unlink flex_user={ALICE} sfdc_user={ALICE} instance=b/2 at={AT}" in caplog.messages


def test_the_json_log_carries_the_audit_facts_as_keys(audited, caplog):
    keeper, _ = audited
    caplog.set_level(logging.INFO, logger="sfdcflex")
    keeper.link("mallory\n2026-01-01 INFO audit link", "a", "r", sfdc_user="m@example.com")
    record = next(r for r in caplog.records if r.getMessage().startswith("audit "))
    assert "\n" not in record.getMessage()   # a newline in an identity cannot forge a text line
    line = JsonFormatter().format(record)
    assert "\n" not in line
    fields = json.loads(line)
    assert {k: fields[k] for k in ("audit", "flex_user", "sfdc_user", "instance", "at")} == {
        "audit": "link", "flex_user": "mallory\n2026-01-01 INFO audit link", "sfdc_user": "m@example.com",
        "instance": "host-a/4242", "at": AT}
    assert fields["level"] == "INFO" and fields["message"] == record.getMessage()


def test_the_instance_defaults_to_host_and_process():
    import os
    import socket
    assert LinkAudit().instance == f"{socket.gethostname()}/{os.getpid()}"


def test_the_readme_shows_the_line_a_link_writes(audited, caplog):
    """README's example audit line has the shape a real one has (its values aside)."""
    import re
    from pathlib import Path
    from sfdcflex.runtime.logs import LineFormatter
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = re.search(r"^    (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO audit link .*)$", readme, re.M).group(1)
    keeper, _ = audited
    caplog.set_level(logging.INFO, logger="sfdcflex")
    keeper.link(ALICE, "a", "r", sfdc_user=ALICE)
    record = next(r for r in caplog.records if r.getMessage().startswith("audit "))
    shape = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO audit link flex_user=\S+ sfdc_user=\S+ "
                       r"instance=\S+/\d+ at=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    assert shape.fullmatch(example) and shape.fullmatch(LineFormatter().format(record))
