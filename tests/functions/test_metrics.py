"""GET /metrics end to end: the whole output parsed strictly, and every counter moved by exactly
what a scripted series of requests did (the stand-ins' own call counts as the second witness)."""
from __future__ import annotations

from tests.support.http import call
from tests.support.prometheus import moved, samples, scrape

BOB = "bob@example.com"


def labelled(**labels: str) -> tuple:
    return tuple(sorted(labels.items()))


def test_counters_move_by_exactly_what_a_scripted_series_of_requests_did(shared_crm):
    crm = shared_crm
    token = crm.token(BOB)
    sf_before, iam_before = sfdcflex_calls_to(crm.sf), crm.iam.calls["validate"]
    before = scrape(crm.url)
    assert crm.link(BOB, token=token).status == 200                        # /auth asks IAM; callback links
    assert crm.post("/get-contact", {"Token": token, "phone": "+14155550101"}).status == 200   # miss
    assert crm.post("/get-contact", {"Token": token, "phone": "+14155550101"}).status == 200   # hit
    assert crm.post("/get-contact", {"Token": token, "phone": "not a phone"}).status == 400
    assert call(crm.url, "GET", "/nope").status == 404
    assert crm.post("/get-user", {"Token": token}).status == 200                                # miss
    crm.sf.expire_access_tokens()
    assert crm.post("/get-contact", {"Token": token, "phone": "+442079460958"}).status == 200  # 401, refresh
    assert crm.post("/unlink", {"Token": token}).status == 200
    assert crm.post("/get-contact", {"Token": "garbage", "phone": "+14155550101"}).status == 403
    assert crm.post("/get-contact", {"Token": "garbage", "phone": "+14155550101"}).status == 403
    assert crm.post("/get-contact", {"phone": "+14155550101"}).status == 400
    after = scrape(crm.url)

    assert moved(before, after, "sfdcflex_requests_total") == {
        labelled(function="auth", code="2xx"): 1, labelled(function="oauth-callback", code="2xx"): 1,
        labelled(function="get-contact", code="2xx"): 3, labelled(function="get-contact", code="4xx"): 4,
        labelled(function="other", code="4xx"): 1, labelled(function="get-user", code="2xx"): 1,
        labelled(function="unlink", code="2xx"): 1, labelled(function="metrics", code="2xx"): 1}
    durations = {function: after["sfdcflex_request_duration_seconds"].value(
        "sfdcflex_request_duration_seconds_count", function=function) - before[
        "sfdcflex_request_duration_seconds"].value("sfdcflex_request_duration_seconds_count", function=function)
        for function in ("auth", "get-contact", "unlink", "other")}
    assert durations == {"auth": 1, "get-contact": 7, "unlink": 1, "other": 1}
    # Six requests met a remembered token; /auth's new token was asked of IAM; "garbage" found
    # nobody there, and was refused from memory the next time, as was the request without a token.
    assert moved(before, after, "sfdcflex_flex_token_checks_total") == {
        labelled(source="memory"): 6, labelled(source="iam"): 1}
    assert moved(before, after, "sfdcflex_flex_token_refusals_total") == {
        labelled(source="iam"): 1, labelled(source="memory"): 2}
    assert moved(before, after, "sfdcflex_cache_lookups_total") == {
        labelled(kind="answers", result="hit"): 1, labelled(kind="answers", result="miss"): 3}
    assert moved(before, after, "sfdcflex_link_events_total") == {
        labelled(event="link"): 1, labelled(event="unlink"): 1}
    assert moved(before, after, "sfdcflex_token_refreshes_total") == {labelled(outcome="ok"): 1}
    assert moved(before, after, "sfdcflex_overload_answers_total") == {}

    upstream = moved(before, after, "sfdcflex_upstream_calls_total")
    sf_calls = sfdcflex_calls_to(crm.sf) - sf_before
    iam_calls = crm.iam.calls["validate"] - iam_before
    assert upstream == {labelled(service="salesforce", outcome="2xx"): sf_calls - 1,
                        labelled(service="salesforce", outcome="4xx"): 1,   # the expired session's 401
                        labelled(service="iam", outcome="2xx"): iam_calls}  # IAM says "not valid" with 200
    assert iam_calls == 2
    connections = moved(before, after, "sfdcflex_upstream_connections_total")
    assert sum(connections.values()) == sf_calls + iam_calls


def sfdcflex_calls_to(sf) -> int:
    """The Salesforce stand-in's own count of calls, less the browser's visits to the authorize page."""
    return sum(count for name, count in sf.calls.items() if name != "authorize")


def test_the_whole_output_holds_every_family_with_the_caps_beside_their_use(shared_crm):
    """Parsed strictly (tests/support/prometheus.py); the gauges a capacity alert needs are there."""
    families = scrape(shared_crm.url)
    for name in ("process_start_time_seconds", "sfdcflex_build_info", "sfdcflex_requests_total",
                 "sfdcflex_request_duration_seconds", "sfdcflex_upstream_calls_total",
                 "sfdcflex_upstream_call_duration_seconds", "sfdcflex_upstream_connections_total",
                 "sfdcflex_cache_lookups_total", "sfdcflex_flex_token_checks_total",
                 "sfdcflex_flex_token_refusals_total",
                 "sfdcflex_link_events_total", "sfdcflex_token_refreshes_total",
                 "sfdcflex_overload_answers_total", "sfdcflex_invocations_in_flight",
                 "sfdcflex_invocations_max", "sfdcflex_connections_open", "sfdcflex_connections_max",
                 "sfdcflex_workers_busy", "sfdcflex_workers_max"):
        assert name in families, name
    assert families["sfdcflex_request_duration_seconds"].kind == "histogram"
    assert samples(families, "sfdcflex_invocations_max") == {(): 30}
    assert samples(families, "sfdcflex_invocations_in_flight") == {(): 0}   # /metrics takes no slot
    assert samples(families, "sfdcflex_connections_max") == {(): 1000}
    assert samples(families, "sfdcflex_connections_open")[()] >= 1          # this scrape's own
    assert samples(families, "sfdcflex_workers_busy")[()] >= 1              # the worker answering it


def test_metrics_hold_no_secret_and_cost_no_upstream_call(shared_crm):
    crm = shared_crm
    before = sum(crm.sf.calls.values()) + sum(crm.iam.calls.values()) + sum(crm.sync.calls.values())
    answer = call(crm.url, "GET", "/metrics")
    assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
    for secret in (crm.iam.auth_token, crm.sf.client_secret, "s" * 48):
        assert secret.encode() not in answer.body
    assert sum(crm.sf.calls.values()) + sum(crm.iam.calls.values()) + sum(crm.sync.calls.values()) == before


def test_the_readme_scrape_config_and_alert_rules_name_what_metrics_exposes(shared_crm):
    """Every metric and label value README's alert rules use is one /metrics exposes, so a
    rule cannot silently match nothing; the scrape config reads the right path."""
    import re
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    scrape_config, rules = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    assert "metrics_path: /metrics" in scrape_config and "authorization:" in scrape_config
    families = scrape(shared_crm.url)
    exposed = {(name, label, value) for family in families.values()
               for (name, labels) in family.samples for label, value in labels}
    exprs = re.findall(r"expr: (.+)", rules)
    assert len(exprs) == 3
    for expr in exprs:
        for name, selector in re.findall(r"(sfdcflex_\w+)(\{[^}]*\})?", expr):
            assert name in families or name.removesuffix("_bucket") in families, name
            for label, value in re.findall(r'(\w+)="([^"]*)"', selector):
                assert (name, label, value) in exposed, (name, label, value)


def test_the_link_trace_is_the_demo_s_only(shared_crm):
    """Outside the demo there is no trace to read and no tap told of anything."""
    assert call(shared_crm.url, "GET", "/demo/link-trace").status == 404
    assert shared_crm.metrics.tap is None
