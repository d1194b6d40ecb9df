"""The demo's link trace (the panel's Link tab, `run.py --demo --trace`): a link as the exchanges
between its parties, each redacted; a refused link shows where and why it stopped; no secret in
the trace, the terminal, the log or /metrics."""
from __future__ import annotations

import json
import logging
import urllib.parse

import pytest

from sfdcflex.demo.trace import redact, redacted_url
from tests.support.demo import demo_in_process
from tests.support.http import call

ALICE, BOB, CAROL = "alice@sfdcflex.demo", "bob@sfdcflex.demo", "carol@sfdcflex.demo"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with demo_in_process(tmp_path_factory.mktemp("trace")) as running:
        yield running


def parties(trace: dict) -> list[tuple]:
    return [(s["source"], s["target"], s["method"], s["status"]) for s in trace["steps"]]


def test_a_link_is_shown_as_its_exchanges_in_order_and_printed_as_they_happen(demo):
    printed_before = len(demo.printed)
    answer, _ = demo.link(ALICE, ALICE)
    assert answer.status == 200
    trace = demo.trace()
    assert trace["state"] == "linked" and trace["identity"] == ALICE and trace["reason"] is None
    assert parties(trace) == [
        ("panel", "sfdcflex", "POST", 200),
        ("popup", "Salesforce authorize", "GET", 200),
        ("popup", "Salesforce consent", "POST", 302),
        ("popup", "sfdcflex", "GET", 200),
        ("sfdcflex", "Salesforce token endpoint", "POST", 200),
        ("sfdcflex", "Salesforce userinfo", "GET", 200),
        ("sfdcflex", "token store (JSON file)", "save", 200)]
    carried = {s["target"]: [c["name"] for c in s["carries"]] for s in trace["steps"] if s["source"] != "popup"}
    assert carried["Salesforce token endpoint"] == ["code", "code_verifier", "client_secret", "redirect_uri",
                                                   "access_token", "refresh_token"]
    assert all(c["note"] for s in trace["steps"] for c in s["carries"] if c["name"] in ("state", "code_verifier"))
    assert all(s["time"] and s["ms"] >= 0 and s["url"] for s in trace["steps"])
    printed = demo.printed[printed_before:]
    for step in trace["steps"]:   # each step in the terminal too, as it completed
        assert any(f"{step['source']} → {step['target']}  {step['method']}" in line for line in printed), step
    assert printed[-1] == f"[link] finished: {ALICE} is linked"


def test_no_secret_reaches_the_trace_the_terminal_the_log_or_the_metrics(demo, caplog):
    caplog.set_level(logging.DEBUG, logger="sfdcflex")
    authorize_url = demo.start_link(BOB)
    from sfdcflex.demo.standins.salesforce import submit_consent
    location = submit_consent(authorize_url, BOB)
    assert call(demo.url, "GET", location[len(demo.url):]).status == 200
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize_url).query))["state"]
    signer = demo.app.services.linker.signer
    stored = json.loads((demo.demo.folder / "tokens.json").read_text())["agents"][BOB]
    secrets = {"access token": stored["access_token"], "refresh token": stored["refresh_token"],
               "PKCE verifier": signer.code_verifier(signer.verify(state)),
               "client secret": demo.demo.settings["SFDC_CLIENT_SECRET"]}
    places = {"trace": json.dumps(demo.trace(), ensure_ascii=False), "terminal": "\n".join(demo.printed),
              "log": "\n".join(r.getMessage() for r in caplog.records),
              "metrics": call(demo.url, "GET", "/metrics").body.decode()}
    assert demo.trace()["state"] == "linked"
    for where, text in places.items():
        for what, secret in secrets.items():
            assert len(secret) >= 16 and secret not in text, f"the {what} is in the {where}"


def test_carol_s_refused_link_shows_where_and_why_it_stopped_and_the_revoke(demo):
    answer, _ = demo.link(CAROL, "carol.ops@sfdcflex.demo")
    assert answer.status == 403
    trace = demo.trace()
    assert trace["state"] == "refused" and trace["reason"]["error"] == "identity_mismatch"
    assert [t for _, t, _, _ in parties(trace)][-4:] == ["sfdcflex", "Salesforce token endpoint",
                                                        "Salesforce userinfo", "Salesforce revoke"]
    stopped = [s for s in trace["steps"] if s["stopped"]]
    assert [(s["target"], s["status"]) for s in stopped] == [("sfdcflex", 403)]
    assert stopped[0]["stopped"].startswith("identity_mismatch: The Salesforce user carol.ops@sfdcflex.demo")
    assert not any("token store" in s["target"] for s in trace["steps"])   # nothing saved


def test_deny_shows_salesforce_s_error_and_the_stop(demo):
    answer, location = demo.link(ALICE, ALICE, allow=False)
    assert answer.status == 403 and "error=access_denied" in location
    trace = demo.trace()
    consent = next(s for s in trace["steps"] if s["target"] == "Salesforce consent")
    assert "Deny" in consent["note"] and trace["reason"]["error"] == "access_denied"
    assert [s["target"] for s in trace["steps"]][-1] == "sfdcflex"


def test_a_replayed_state_is_a_trace_of_its_own_stopped_at_once(demo):
    answer, location = demo.link(BOB, BOB)
    assert answer.status == 200
    serial = demo.trace()["serial"]
    assert call(demo.url, "GET", location[len(demo.url):]).status == 403
    trace = demo.trace()
    assert trace["serial"] == serial + 1 and trace["state"] == "refused"
    assert parties(trace) == [("popup", "sfdcflex", "GET", 403)]
    assert trace["reason"]["error"] == "state_used" and "replayed" in trace["steps"][0]["note"]


def test_values_are_cut_to_a_prefix_and_the_client_secret_is_never_shown():
    assert redact("code_verifier", "v" * 43) == "vvvvvv…"
    assert redact("state", "abc") == "a…"
    assert redact("client_secret", "s" * 40) == "(not shown)"
    assert redacted_url("https://sf/x?code=abcdefghijkl&scope=api&state=s1s2s3s4s5s6s7") == \
        "https://sf/x?code=abcd…&scope=api&state=s1s2…"
