"""The runtime's counters, histograms and their Prometheus text, read back by a strict parser."""
from __future__ import annotations

import math

import pytest

from sfdcflex.runtime.response import Reply
from sfdcflex.runtime.metrics import CONTENT_TYPE, Registry, RequestMeter, process_families
from tests.support.prometheus import FormatError, parse


def test_exposition_parses_strictly_with_escaped_label_values_and_help():
    """A label value or help text with a backslash, a quote or a newline cannot break the format."""
    registry = Registry()
    counter = registry.counter("demo_things_total", 'Things; help with \\ and\na newline.', ("name",))
    counter.labels('a "quoted"\\back\nslash').inc(3)
    families = parse(registry.exposition().decode())
    family = families["demo_things_total"]
    assert family.kind == "counter" and family.help == 'Things; help with \\ and\na newline.'
    assert family.value(name='a "quoted"\\back\nslash') == 3


def test_histogram_buckets_are_cumulative_and_end_in_inf():
    """A value equal to a bound counts in that bound's bucket (le); above every bound only in +Inf."""
    registry = Registry()
    child = registry.histogram("demo_seconds", "Durations.", ("route",), buckets=(0.1, 1.0)).labels("x")
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        child.observe(value)
    family = parse(registry.exposition().decode())["demo_seconds"]
    assert [family.value("demo_seconds_bucket", route="x", le=le) for le in ("0.1", "1", "+Inf")] == [2, 4, 5]
    assert family.value("demo_seconds_count", route="x") == 5
    assert math.isclose(family.value("demo_seconds_sum", route="x"), 8.65)


def test_request_meter_counts_by_function_and_status_class_and_overload():
    """Aliases count as their function, unknown paths as `other`, 429/503/504 also as overload."""
    registry = Registry()
    meter = RequestMeter(registry, {"/get-contact": "get-contact", "/get-contact-account-data": "get-contact"})
    for path, status in (("/get-contact", 200), ("/get-contact-account-data", 404), ("/nope", 404),
                         ("/get-contact", 429), ("/get-contact", 504), ("/x", 503)):
        meter.observe(None, path, Reply(status), 0.002)
    families = parse(registry.exposition().decode())
    requests = families["sfdcflex_requests_total"]
    assert requests.value(function="get-contact", code="2xx") == 1
    assert requests.value(function="get-contact", code="4xx") == 2
    assert requests.value(function="get-contact", code="5xx") == 1
    assert requests.value(function="other", code="4xx") == 1
    assert requests.value(function="other", code="5xx") == 1
    overload = families["sfdcflex_overload_answers_total"]
    assert [overload.value(code=c) for c in ("429", "503", "504")] == [1, 1, 1]
    durations = families["sfdcflex_request_duration_seconds"]
    assert durations.value("sfdcflex_request_duration_seconds_count", function="get-contact") == 4
    assert durations.value("sfdcflex_request_duration_seconds_bucket", function="get-contact", le="0.005") == 4
    meter.observe(None, "/get-contact", Reply(200), 0.01)   # on a bound: counted in its bucket (le)
    durations = parse(registry.exposition().decode())["sfdcflex_request_duration_seconds"]
    assert [durations.value("sfdcflex_request_duration_seconds_bucket", function="get-contact", le=le)
            for le in ("0.005", "0.01", "+Inf")] == [4, 5, 5]


def test_process_families_follow_the_convention():
    registry = Registry()
    process_families(registry, "1.2.3", started=1700000000.5)
    families = parse(registry.exposition().decode())
    assert families["process_start_time_seconds"].value() == 1700000000.5
    assert families["sfdcflex_build_info"].value(version="1.2.3") == 1
    assert "version=0.0.4" in CONTENT_TYPE


def test_names_outside_the_grammar_and_duplicate_families_are_refused():
    registry = Registry()
    registry.counter("ok_total", "Fine.")
    with pytest.raises(ValueError):
        registry.counter("ok_total", "Again.")
    for name, labels in (("bad-name", ()), ("ok2_total", ("le-x",)), ("ok3_total", ("__reserved",))):
        with pytest.raises(ValueError):
            registry.counter(name, "Bad.", labels)


@pytest.mark.parametrize("text", [
    "x 1\n",                                                           # no TYPE before the sample
    "# TYPE x counter\nx{a=\"1\",a=\"2\"} 1\n",                        # a label twice
    "# TYPE x counter\nx{a=\"\\q\"} 1\n",                              # an unknown escape
    "# TYPE x counter\nx 1\n# TYPE x counter\n",                       # TYPE after samples
    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",  # not cumulative
    "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  # no +Inf bucket
    "# TYPE x gauge\nx one\n",                                          # not a number
    "# TYPE x gauge\n# TYPE y gauge\ny 1\nx 1\ny 2\n",                  # samples split
])
def test_the_parser_refuses_what_breaks_the_format(text):
    """The parser the endpoint's test relies on is itself strict."""
    with pytest.raises(FormatError):
        parse(text)


def test_the_app_counts_every_answer_and_every_refusal_the_server_makes():
    """App.dispatch tells the observer of each answer, by route; App.refusal (413/431 while the
    server reads) of each refusal, as `other`, since no route was reached."""
    from sfdcflex.runtime.errors import HeadersTooLarge
    from tests.support.dispatch import Local, build_app
    registry = Registry()
    meter = RequestMeter(registry, {"/hello": "hello"})
    app = build_app(observe=meter.observe)
    try:
        local = Local(app)
        assert local.call("GET", "/hello").status == 200
        assert local.call("GET", "/missing").status == 404
        assert app.refusal(HeadersTooLarge("too large"), None).status == 431
    finally:
        app.close()
    requests = parse(registry.exposition().decode())["sfdcflex_requests_total"]
    assert requests.value(function="hello", code="2xx") == 1
    assert requests.value(function="other", code="4xx") == 2


def test_a_status_a_function_may_send_beyond_599_is_counted_in_its_own_class():
    """Functions may answer 100-999 (as twilio-run takes them): a 600 must be counted, not break
    the answer; the usual five classes are always listed, the others once they occur."""
    registry = Registry()
    meter = RequestMeter(registry, {"/respond": "respond"})
    meter.observe(None, "/respond", Reply(600), 0.001)
    meter.observe(None, "/respond", Reply(999), 0.001)
    requests = parse(registry.exposition().decode())["sfdcflex_requests_total"]
    assert requests.value(function="respond", code="6xx") == 1
    assert requests.value(function="respond", code="9xx") == 1
    assert requests.value(function="respond", code="2xx") == 0
    assert not any(dict(labels).get("code") == "7xx" for _, labels in requests.samples)
